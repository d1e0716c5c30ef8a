"""The console script's exit status (as ``docker run``) and its checks before spending.

Every test runs the real ``ecs-sandbox`` script as a subprocess, as CI does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_proc import cli_env, run_cli

# The embedded local ECS logs this at INFO (-v) when it starts serving.
STARTED = "local AWS serving"
POSITIVE = "--timeout must be a positive"


def test_help_states_the_exit_codes_and_the_default_timeout() -> None:
    top = run_cli(["--help"])
    assert top.returncode == 0
    for text in ("124", "125", "126/127", "143", "passed through"):
        assert text in top.stdout
    exec_help = run_cli(["exec", "--help"])
    assert "180" in exec_help.stdout and "124" in exec_help.stdout
    assert "shell text" in exec_help.stdout and "argv" in exec_help.stdout
    assert "merged" in exec_help.stdout


def test_version() -> None:
    done = run_cli(["--version"])
    assert done.returncode == 0
    assert done.stdout.startswith("ecs-sandbox ")


def test_the_commands_own_exit_status_passes_through() -> None:
    done = run_cli(["--local", "exec", "--", "sh", "-c", "echo out; exit 7"])
    assert (done.returncode, done.stdout) == (7, "out\n")


def test_a_command_that_is_not_found_exits_127_as_in_a_shell() -> None:
    done = run_cli(["exec", "--local", "--", "no-such-command-e3b0c442"])
    assert done.returncode == 127


def test_a_timeout_exits_124_and_keeps_the_output_so_far() -> None:
    done = run_cli(["exec", "--local", "--timeout", "2", "--", "sh -c 'echo first; sleep 60'"])
    assert done.returncode == 124
    assert done.stdout.startswith("first\n")
    assert "did not finish within 2 s" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--local", "-v", "exec", "--timeout", "0", "--", "true"], POSITIVE),
        (["--local", "exec", "-v", "--timeout", "-5", "--", "true"], POSITIVE),
        (["exec", "--local", "-v", "--timeout", "nan", "--", "true"], POSITIVE),
        (["exec", "--local", "-v", "--set", "cpu=7", "--", "true"], "not a Fargate cpu"),
        (["exec", "-v", "--set", "cpuu=1024", "--local", "--", "true"], "unknown configuration"),
        (["exec", "--local", "-v"], "exec needs a command"),
        (["exec", "--local", "-v", "--env", "NOEQUALS", "--", "true"], "NAME=VALUE"),
        (["cp", "--local", "-v", "/nonexistent/e3b0c442", "sandbox:/app"], "does not exist"),
        (["cp", "--local", "-v", "a", "b"], "exactly one of SRC and DST"),
        (["cp", "--local", "-v", "/etc/hostname", "sandbox:app"], "must be absolute"),
        (["gc", "--local", "-v"], "gc needs --run-id or --older-than"),
        (["gc", "--local", "-v", "--older-than", "soon"], "duration"),
        (["down", "--local", "-v"], "down needs sandbox ids or --all"),
        # On AWS: nothing reaches the (unreachable) endpoint before the check fails.
        (["exec", "-v", "--set", "cluster=c", "--", "true"], "missing required configuration"),
    ],
)
def test_user_errors_are_one_line_and_exit_125_before_anything_starts(
    args: list[str], says: str
) -> None:
    done = run_cli(args, env=cli_env(AWS_ENDPOINT_URL="http://127.0.0.1:9"), timeout=30)
    assert done.returncode == 125, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ecs-sandbox: error:")]
    assert len(errors) == 1, done.stderr
    assert says in errors[0]
    assert "Traceback" not in done.stderr
    assert STARTED not in done.stderr
    assert "run id" not in done.stderr  # no sandbox was started


def test_configuration_options_work_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("cluster = [unclosed\n")
    done = run_cli(["exec", "--local", "--config", str(config), "--", "true"])
    assert done.returncode == 125
    assert "not valid TOML" in done.stderr


def test_usage_errors_from_the_parser_exit_125_as_dockers_do() -> None:
    done = run_cli(["exec", "--no-such-flag", "--", "true"])
    assert done.returncode == 125
    assert "usage: ecs-sandbox" in done.stderr
    done = run_cli([])
    assert done.returncode == 125


def test_missing_bubblewrap_names_a_remedy_a_pip_user_has(tmp_path: Path) -> None:
    # The console script's interpreter is an absolute path: an empty PATH hides bwrap only.
    for args in (["--local", "exec", "--", "true"], ["demo"], ["up", "--local"]):
        done = run_cli(args, env=cli_env(PATH=str(tmp_path)))
        assert done.returncode == 125
        assert "bubblewrap" in done.stderr
        assert "install-sysdeps" not in done.stderr
        assert "Traceback" not in done.stderr


def test_a_failed_copy_is_one_line_without_the_sandboxs_traceback(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a\n")
    done = run_cli(["cp", "--local", str(source), "sandbox:/usr/lib/"])
    assert done.returncode == 125
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Read-only file system" in done.stderr
    assert "Traceback" not in done.stderr
