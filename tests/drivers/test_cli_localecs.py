"""The persistent local ECS's state directory and state file (no process started here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ecs_sandbox_drivers import _localecs


def test_the_state_directory_follows_the_environment(tmp_path: Path) -> None:
    explicit = {"ECS_SANDBOX_LOCAL_DIR": str(tmp_path / "d"), "XDG_RUNTIME_DIR": "/run/user/1"}
    assert _localecs.state_dir(explicit) == tmp_path / "d"
    assert _localecs.state_dir({"XDG_RUNTIME_DIR": "/run/user/1"}) == Path(
        "/run/user/1/ecs-sandbox/local"
    )
    assert _localecs.state_dir({}) == Path.home() / ".cache" / "ecs-sandbox" / "local"


def _state(pid: int) -> dict[str, object]:
    return {
        "pid": pid,
        "endpoint_url": "http://127.0.0.1:1",
        "config": {"cluster": "c"},
        "aws_env": {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    }


def test_a_state_file_counts_only_while_its_process_lives(tmp_path: Path) -> None:
    assert _localecs.find(tmp_path) is None  # no file
    _localecs._write_state(tmp_path, _state(os.getpid()))
    assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"
    found = _localecs.find(tmp_path)
    assert found is not None and found.pid == os.getpid()
    assert found.boto3_session().region_name == "us-east-1"
    # A process that has exited: the file is stale.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    _localecs._write_state(tmp_path, _state(int(gone.stdout)))
    assert _localecs.find(tmp_path) is None
    assert _localecs.stop(tmp_path) is False


def test_a_damaged_state_file_is_ignored(tmp_path: Path) -> None:
    for text in ("", "{", "[]", json.dumps({"pid": "x"}), json.dumps({"pid": os.getpid()})):
        (tmp_path / "state.json").write_text(text)
        assert _localecs.find(tmp_path) is None
