"""The ecs-sandbox command line: help, configuration sources, exec's exit code, cp."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecs_sandbox_drivers import _cliconfig
from ecs_sandbox_drivers.cli import main

REQUIRED = "cluster = 'c'\ntask_definition = 't'\ncontainer_name = 'main'\n"


@pytest.mark.parametrize("command", [[], ["demo"], ["exec"], ["shell"], ["cp"]])
def test_every_help_is_complete(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "usage: ecs-sandbox" in text
    if not command:
        for sub in ("demo", "exec", "shell", "cp", "ECS_SANDBOX_", "--set"):
            assert sub in text
    else:
        assert "--local" in text


def test_sources_merge_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[ecs_sandbox]\n" + REQUIRED + "subnets = ['s-file']\nsecurity_groups = ['g']\n"
        "cpu = '1024'\n"
    )
    cfg = _cliconfig.resolve(
        config_file=str(config),
        assignments=["cpu=2048", "assign_public_ip=yes"],
        environ={"ECS_SANDBOX_SUBNETS": "s-env1,s-env2", "ECS_SANDBOX_CPU": "512"},
    )
    assert cfg.subnets == ("s-env1", "s-env2")  # the environment beats the file
    assert cfg.cpu == "2048"  # flags beat both
    assert cfg.assign_public_ip is True


def test_limits_come_from_every_source_as_whole_numbers(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        REQUIRED + "subnets = ['s']\nsecurity_groups = ['g']\nmax_download_members = 500\n"
    )
    cfg = _cliconfig.resolve(
        config_file=str(config),
        assignments=["max_download_bytes=2_000_000"],
        environ={"ECS_SANDBOX_MAX_EXEC_OUTPUT_BYTES": "1048576"},
    )
    assert (cfg.max_exec_output_bytes, cfg.max_download_bytes, cfg.max_download_members) == (
        1_048_576,
        2_000_000,
        500,
    )
    with pytest.raises(_cliconfig.ConfigError, match="max_exec_output_bytes"):
        _cliconfig.resolve(
            config_file=str(config), assignments=["max_exec_output_bytes=64MiB"], environ={}
        )


def test_bad_configuration_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("cluster = [unclosed\n")
    assert main(["--config", str(config), "exec", "--", "true"]) == 125
    assert "not valid TOML" in capsys.readouterr().err
    config.write_text(REQUIRED + "subnets = ['s']\nsecurity_groups = ['g']\n")
    assert main(["--config", str(config), "--set", "cpu=7", "exec", "--", "true"]) == 125
    assert "not a Fargate cpu value" in capsys.readouterr().err
    assert main(["--config", str(config), "--set", "nonsense", "exec", "--", "true"]) == 125
    assert "key=value" in capsys.readouterr().err


def test_exec_exits_with_the_commands_exit_code(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["--local", "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 5"]) == 5
    assert capfd.readouterr().out == "out\nerr\n"


def test_cp_in_then_run_and_out(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.bin").write_bytes(b"\x00\x01binary\xff")
    assert main(["--local", "cp", str(src), "sandbox:/app", "--then", "od -c /app/data.bin"]) == 0
    assert "b   i   n   a   r   y" in capfd.readouterr().out
    out = tmp_path / "out"
    # As docker cp: a destination that is not a directory is the copy's own name.
    assert main(["--local", "cp", "sandbox:/etc/hostname", str(out)]) == 0
    # /etc is the host's, bound read-only into every local sandbox.
    assert out.read_bytes() == Path("/etc/hostname").read_bytes()
    assert main(["--local", "cp", "a", "b"]) == 125
    assert "exactly one of SRC and DST" in capfd.readouterr().err
