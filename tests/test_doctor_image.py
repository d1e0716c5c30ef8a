"""The image probe: its script under a real sh with chosen tools, and its parser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _images import tool_dir
from ecs_sandbox_core._doctor_image import PROBE_SCRIPT, TOOLS, image_check, parse_probe

PROGRAMS = ["base64", "stty", "tmux", "setsid", "sleep", "python3", "curl", "wget"]


def probe_with(tmp_path: Path, programs: list[str]) -> str:
    """Run the probe under /bin/sh with only ``programs`` (and sh) on PATH."""
    bin_dir = tool_dir(tmp_path, programs)
    done = subprocess.run(
        ["/bin/sh", "-c", PROBE_SCRIPT],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_an_image_with_everything_passes(tmp_path: Path) -> None:
    report = parse_probe(probe_with(tmp_path, PROGRAMS))
    assert report.ok and report.missing == ()
    assert image_check(report, "img").status == "pass"


def test_a_bare_image_misses_every_tool(tmp_path: Path) -> None:
    report = parse_probe(probe_with(tmp_path, []))
    assert {t.name for t in report.missing} == {t.name for t in TOOLS}
    check = image_check(report, "alpine:3")
    assert check.status == "fail"
    assert "image alpine:3 lacks base64 (needed for binary exec output" in check.detail
    assert check.fix is not None and check.fix.startswith("Install base64, stty, tmux")


@pytest.mark.parametrize(
    ("programs", "missing"),
    [
        (["base64", "stty", "setsid", "sleep", "python3"], {"tmux"}),
        (["base64", "stty", "tmux", "setsid", "sleep", "curl"], {"python3>=3.8"}),
        (["stty", "tmux", "setsid", "sleep", "python3"], {"base64"}),
        (["base64", "stty", "tmux", "sleep", "wget"], {"setsid", "python3>=3.8"}),
    ],
)
def test_exactly_the_missing_tools_are_named(
    tmp_path: Path, programs: list[str], missing: set[str]
) -> None:
    report = parse_probe(probe_with(tmp_path, programs))
    assert {t.name for t in report.missing} == missing


ANSWER_NAMES = ["base64", "stty", "tmux", "setsid", "sleep", "python3>=3.8", "python>=3.8", "fetch"]
noise = st.text(alphabet="abc:>\r\n ecs-sandbox-probe", max_size=30)


@given(
    st.dictionaries(st.sampled_from(ANSWER_NAMES), st.booleans()),
    st.lists(noise, max_size=5),
    st.booleans(),
)
def test_the_parser_reads_any_answers_amid_noise(
    answers: dict[str, bool], noises: list[str], crlf: bool
) -> None:
    lines = [f"ecs-sandbox-probe:{name}:{'yes' if ok else 'no'}" for name, ok in answers.items()]
    mixed = []
    for i, line in enumerate(lines):
        mixed += [noises[i % len(noises)] if noises else "", line]
    text = ("\r\n" if crlf else "\n").join(["\n", *mixed, ""])
    # Noise must not be able to forge an answer line on its own.
    if any("ecs-sandbox-probe:" in n for n in noises):
        return
    report = parse_probe(text)
    for tool in TOOLS:
        names = [tool.name, *tool.alternatives]
        said = [answers[n] for n in names if n in answers]
        if any(said):
            assert tool not in report.missing and tool.name not in report.unanswered
        elif len(said) == len(names):
            assert tool in report.missing
        else:
            assert tool.name in report.unanswered
    assert report.ok == all(any(answers.get(n) for n in (t.name, *t.alternatives)) for t in TOOLS)


def test_a_silent_stream_is_unknown_not_a_pass() -> None:
    report = parse_probe("sh: 1: syntax error\n")
    assert not report.ok and report.missing == ()
    assert image_check(report, "img").status == "unknown"


def test_python_too_old_counts_as_missing(tmp_path: Path) -> None:
    fake = tmp_path / "old"
    fake.mkdir()
    old = fake / "python3"
    old.write_text("#!/bin/sh\nexit 1\n")  # what sys.exit(version < (3, 8)) does on 3.7
    old.chmod(0o755)
    out = subprocess.run(
        ["/bin/sh", "-c", PROBE_SCRIPT],
        env={"PATH": f"{fake}{os.pathsep}{os.path.dirname(shutil.which('sh') or '/bin/sh')}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "ecs-sandbox-probe:python3>=3.8:no" in out
