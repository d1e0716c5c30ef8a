"""Fixtures of the fault-injection suite, and the hook that writes reliability-report.json.

Every case gets a :class:`Case` (its driver mode, configuration, fault helpers); when the
case ends the fixture audits what it left behind and records it in the report, and fails
the test if anything leaked, ran twice, failed without explaining itself or logged a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from _faults_harness import MODES, SCANNER, Case
from _faults_report import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REPORT

from ecs_sandbox_drivers.local import LocalAws

REPORT_PATH = Path(__file__).resolve().parents[2] / "reliability-report.json"


class _ScanHandler(logging.Handler):
    """Sees every record at DEBUG and hands its text to the secret scanner."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{record.exc_info[1]!s}"
        SCANNER.scan(record.name, text)


@pytest.fixture(scope="session")
def faults_aws() -> Iterator[LocalAws]:
    """The suite's own LocalAws (its own cluster and bucket), with every log record scanned."""
    root = logging.getLogger()
    handler = _ScanHandler(level=logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with LocalAws(first_read_delay_s=0.05) as aws:  # see tests/drivers/conftest.py
            # The suite signs with its own distinctive fake credentials (for the secret scan):
            # the endpoint and the data-channel gateway accept them as a second key pair.
            aws.accept_credentials(FAKE_ACCESS_KEY, FAKE_SECRET_KEY)
            yield aws
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def case(request: pytest.FixtureRequest, faults_aws: LocalAws, mode: str) -> Iterator[Case]:
    """One case against one driver; audited and recorded when the test ends."""
    category = getattr(request.module, "CATEGORY", request.module.__name__)
    name = request.node.originalname.removeprefix("test_").replace("_", "-")
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None:
        extra = [part for part in callspec.id.split("-") if part not in MODES]
        if extra:
            name += "[" + "-".join(extra) + "]"
    the_case = Case(faults_aws, mode, name, category)
    xfail = request.node.get_closest_marker("xfail")
    if xfail is not None:
        the_case.record.known_gap = str(xfail.kwargs.get("reason", "expected to fail"))
    yield the_case
    record = the_case.finish()
    problems = []
    if record.leaked:
        problems.append(f"leaked {record.leaked}")
    if record.duplicate_executions:
        problems.append(f"{record.duplicate_executions} duplicate execution(s)")
    if record.secrets_logged:
        problems.append(f"{record.secrets_logged} secret(s) logged")
    if problems:
        pytest.fail(f"{name} [{mode}]: " + ", ".join(problems) + "\n" + "\n".join(record.details))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write reliability-report.json when fault cases ran in this session."""
    if REPORT.cases:
        REPORT.write(REPORT_PATH)
