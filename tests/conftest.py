"""Settings for the whole suite."""

from __future__ import annotations

import os
import signal

from hypothesis import settings

# Many property tests run real shells, tmux and python3 per example: a per-example deadline
# measures the machine's load, not the code. CI runs derandomized so that a landing is
# decided by the code, while local runs keep exploring new examples.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A runner started under nohup, or as a background job of a shell without job control
# (`cmd &` in a script), ignores SIGHUP, or SIGINT and SIGQUIT, and passes the ignored
# dispositions to every process the tests start; a POSIX shell cannot undo an ignore it
# inherited. The wrapper's hang-up of a finished command, Ctrl-C in the CLI and the tests
# that interrupt a command would then see signals ignored that never are in a container or
# a terminal. Tests run with these signals at their defaults.
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
