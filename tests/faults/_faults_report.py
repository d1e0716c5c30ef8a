"""The fault suite's ledger: one record per case, written as reliability-report.json.

A *case* is one fault scenario run against one driver (sync, asyncio or trio) on the
embedded local ECS. After each case the harness counts what it left behind (``leaked``),
commands that ran more than once (``duplicate_executions``), failures that were not the
documented error or did not explain themselves (``unexplained_failures``) and secrets found
in log records or exception messages (``secrets_logged``).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Distinctive fake credentials handed to every driver in the suite; moto accepts anything.
FAKE_ACCESS_KEY = "AKIAFAULTSUITE000001"
FAKE_SECRET_KEY = "FAKESECRETfaultsuite0123456789"
FAKE_SESSION_TOKEN = "FAKETOKENfaultsuite"

SECRET_PATTERNS = (
    re.compile(re.escape(FAKE_SECRET_KEY)),
    re.compile(re.escape(FAKE_SESSION_TOKEN)),
    re.compile(r"X-Amz-Signature", re.IGNORECASE),
    re.compile(r"X-Amz-Credential", re.IGNORECASE),
    re.compile(r"X-Amz-Security-Token", re.IGNORECASE),
    re.compile(r"Signature="),
)

# Log records of this project are held to the rule; other libraries' records are counted
# separately (botocore's DEBUG output prints signed request headers by design).
PROJECT_LOGGERS = ("ecs_sandbox",)


def find_secret(text: str) -> str | None:
    """The first secret pattern found in ``text``, or None."""
    for pattern in SECRET_PATTERNS:
        if pattern.search(text):
            return pattern.pattern
    return None


@dataclass
class CaseRecord:
    case: str
    driver: str
    category: str
    outcome: str = ""
    leaked: int = 0
    duplicate_executions: int = 0
    unexplained_failures: int = 0
    secrets_logged: int = 0
    known_gap: str = ""  # an xfail(strict) case: the reason it is expected to fail
    details: list[str] = field(default_factory=list)


class Report:
    """Accumulates case records and secret findings over the session."""

    def __init__(self) -> None:
        self.cases: list[CaseRecord] = []
        self.log_records_scanned = 0
        self.exception_messages_scanned = 0
        self.third_party_records_with_secrets: Counter[str] = Counter()
        self.stray_secrets: list[str] = []  # found in project records outside any case
        self._lock = threading.Lock()

    def add(self, record: CaseRecord) -> None:
        with self._lock:
            self.cases.append(record)

    def summary(self) -> dict[str, object]:
        # A known gap (an xfail case) fails as documented: it is listed, not counted as a
        # case or as an unexplained failure; a leak, a duplicate or a secret still counts.
        counted = [c for c in self.cases if not c.known_gap]
        per_driver = Counter(c.driver for c in counted)
        per_category = Counter(c.category for c in counted)
        return {
            "cases": len(counted),
            "leaked": sum(c.leaked for c in self.cases),
            "duplicate_executions": sum(c.duplicate_executions for c in self.cases),
            "unexplained_failures": sum(c.unexplained_failures for c in counted),
            "secrets_logged": sum(c.secrets_logged for c in self.cases) + len(self.stray_secrets),
            "known_gaps": len(self.cases) - len(counted),
            "cases_per_driver": dict(sorted(per_driver.items())),
            "cases_per_category": dict(sorted(per_category.items())),
            "log_records_scanned": self.log_records_scanned,
            "exception_messages_scanned": self.exception_messages_scanned,
            "third_party_log_records_with_signatures": dict(
                sorted(self.third_party_records_with_secrets.items())
            ),
        }

    def write(self, path: Path) -> None:
        data = self.summary()
        data["failing_cases"] = [
            asdict(c)
            for c in self.cases
            if c.leaked
            or c.duplicate_executions
            or c.secrets_logged
            or (c.unexplained_failures and not c.known_gap)
        ]
        data["known_gap_cases"] = [
            f"{c.driver}:{c.case}: {c.known_gap}" for c in self.cases if c.known_gap
        ]
        data["secrets_outside_cases"] = self.stray_secrets
        data["case_list"] = [f"{c.driver}:{c.case} -> {c.outcome}" for c in self.cases]
        path.write_text(json.dumps(data, indent=2) + "\n")


REPORT = Report()


def check(path: Path, *, min_cases_per_driver: int = 30) -> list[str]:
    """Why the report at ``path`` fails the bar (``make faults``), or [] when it passes."""
    if not path.exists():
        return [f"{path} was not written (did the fault cases run?)"]
    data = json.loads(path.read_text())
    problems = [
        f"{key} = {data.get(key)}, must be 0"
        for key in ("leaked", "duplicate_executions", "unexplained_failures", "secrets_logged")
        if data.get(key) != 0
    ]
    per_driver = data.get("cases_per_driver", {})
    for driver in ("sync", "asyncio", "trio"):
        if per_driver.get(driver, 0) < min_cases_per_driver:
            problems.append(
                f"{per_driver.get(driver, 0)} cases for {driver}, need {min_cases_per_driver}"
            )
    return problems


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "reliability-report.json")
    failures = check(target)
    summary = (
        {k: v for k, v in json.loads(target.read_text()).items() if not isinstance(v, list)}
        if target.exists()
        else {}
    )
    print(json.dumps(summary, indent=2))
    if failures:
        print("reliability bar NOT met:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("reliability bar met")
