"""Settings for the whole suite."""

from __future__ import annotations

import os

from hypothesis import settings

# Many property tests run real shells, tmux and python3 per example: a per-example deadline
# measures the machine's load, not the code. CI runs derandomized so that a landing is
# decided by the code, while local runs keep exploring new examples.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
