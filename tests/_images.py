"""Stand-ins for container images in tests: a PATH holding only chosen programs."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest


def tool_dir(tmp_path: Path, programs: Sequence[str]) -> Path:
    """A directory holding ``sh`` and ``programs``: the PATH of an image with just those."""
    bin_dir = tmp_path / ("bin-" + "-".join(programs))
    if bin_dir.exists():
        return bin_dir
    bin_dir.mkdir()
    for name in ["sh", *programs]:
        # python3 on PATH may be a pyenv shim (a bash script); use this interpreter.
        found = os.path.realpath(sys.executable) if name == "python3" else shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed here")
        (bin_dir / name).symlink_to(found)
    return bin_dir


__all__ = ["tool_dir"]
