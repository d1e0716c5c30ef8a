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

# A runner started under nohup (or anything else that ignores SIGHUP) passes the ignored
# disposition to every process the tests start, and a POSIX shell cannot undo an ignore it
# inherited: the wrapper's hang-up of a finished command's process group would then be
# ignored, as it never is in a container. Tests run their children with SIGHUP as default.
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
