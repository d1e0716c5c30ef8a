"""What ``ecs-sandbox gc`` selects: its criteria, its report and the pure selection rules.

A resource is *ours* when it carries the ``ecs-sandbox:run-id`` tag (tasks, task
definitions) or sits under our staging prefix with a staged name (objects). It *matches*
when it is ours and satisfies every criterion given (:class:`GcCriteria`): the run id,
and/or a creation time older than the age. A resource without a creation time never
matches an age. A matching task definition is kept while a task the sweep does not stop
still uses it. These functions take the listings as plain dicts and decide; the flow that
lists and releases is :mod:`._gc`.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._config import EcsFargateConfig
from ._errors import UsageError
from ._taskdef import TAG_PREFIX, _tag_value
from ._transfer_flow import _key_part

RUN_ID_TAG = TAG_PREFIX + "run-id"
TASK_ID_TAG = TAG_PREFIX + "task-id"
OWNER_TAG = TAG_PREFIX + "owner"
CREATED_AT_TAG = TAG_PREFIX + "created-at"

FAMILY_PREFIX = "ecs-sandbox-"
"""The prefix of every task-definition family ecs-sandbox registers (see ``family_for``)."""

PLAUSIBLE_EPOCH = 1_500_000_000.0
"""A ``created-at`` tag before this (July 2017) is not a wall-clock time and is ignored."""

DESCRIBE_BATCH = 100  # DescribeTasks takes at most 100 tasks per call
_OUR_FAMILY = re.compile(r"ecs-sandbox-[0-9a-f]{32}")
# staging_key's last component: a hex token from a Token effect, "-", a cleaned suffix.
_STAGED_NAME = re.compile(r"[0-9a-f]{16,64}-[A-Za-z0-9._-]+")
_LIVE = frozenset({"PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Kind = Literal["task", "task-definition", "object"]


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GcCriteria:
    """What a sweep selects: ours, of ``run_id`` and/or created more than ``older_than_s``
    seconds before ``now_epoch`` (wall-clock epoch seconds, passed in by the driver).

    Both criteria given means both must hold. At least one is required: a sweep of
    everything ecs-sandbox ever created would also stop the sandboxes of live harnesses.
    """

    run_id: str | None
    older_than_s: float | None
    now_epoch: float

    def __post_init__(self) -> None:
        if self.run_id is None and self.older_than_s is None:
            raise UsageError(
                "gc needs a run id or an age",
                remedy="Give --run-id ID (what one harness run left), --older-than DURATION "
                "(e.g. 2h: everything ecs-sandbox created before then), or both.",
            )
        if self.run_id is not None and (not isinstance(self.run_id, str) or not self.run_id):
            raise UsageError(f"run id {self.run_id!r} is empty or not a string")
        if self.older_than_s is not None and (
            isinstance(self.older_than_s, bool)
            or not isinstance(self.older_than_s, (int, float))
            or not math.isfinite(self.older_than_s)
            or self.older_than_s <= 0
        ):
            raise UsageError(
                f"the age must be a positive number of seconds, not {self.older_than_s!r}"
            )
        if not isinstance(self.now_epoch, (int, float)) or not math.isfinite(self.now_epoch):
            raise UsageError(f"now_epoch must be epoch seconds, not {self.now_epoch!r}")

    def old_enough(self, created_at: float | None) -> bool:
        """Whether a resource created at ``created_at`` passes the age criterion."""
        if self.older_than_s is None:
            return True
        return created_at is not None and self.now_epoch - created_at > self.older_than_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Orphan:
    """One resource a sweep selected.

    ``ref`` is the task ARN, the task-definition ARN or ``s3://bucket/key``; ``run_id`` is
    the run it belongs to as recorded (tag value or key component, possibly cleaned);
    ``created_at`` is epoch seconds, or None when unknown.
    """

    kind: Kind
    ref: str
    run_id: str
    created_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GcFailure:
    """A release that failed: the resource and the error's text."""

    orphan: Orphan
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GcReport:
    """What a sweep released (in a dry run: would release), kept and failed to release.

    ``kept`` lists matching task definitions left alone because a task the sweep did not
    stop still uses them.
    """

    dry_run: bool
    released: tuple[Orphan, ...] = ()
    kept: tuple[Orphan, ...] = ()
    failed: tuple[GcFailure, ...] = ()

    def of_kind(self, kind: Kind) -> tuple[Orphan, ...]:
        """The released resources of one kind."""
        return tuple(o for o in self.released if o.kind == kind)

    @property
    def ok(self) -> bool:
        """True when every selected resource was released."""
        return not self.failed


# --- pure helpers ---------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``.

    A bare number is seconds. Raises :class:`UsageError` for anything else, or for zero.
    """
    raw = text.strip().lower() if isinstance(text, str) else ""
    total = 0.0
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        total = float(raw)
    elif raw and re.fullmatch(f"(?:{_DURATION.pattern})+", raw):
        total = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(raw))
    else:
        raise UsageError(
            f"{text!r} is not a duration",
            remedy="Write it as a number with a unit: 90s, 30m, 2h, 1d, or combined: 1h30m.",
        )
    if total <= 0:
        raise UsageError(f"the duration {text!r} is not positive")
    return total


def tag_map(tags: Iterable[Any] | None) -> dict[str, str]:
    """ECS tags (``[{"key", "value"}]``) as a dict; malformed entries are skipped."""
    out: dict[str, str] = {}
    for tag in tags or ():
        if isinstance(tag, Mapping) and isinstance(tag.get("key"), str):
            out[tag["key"]] = str(tag.get("value", ""))
    return out


def _epoch(value: Any) -> float | None:
    """Epoch seconds from a tag string, a number or a datetime (naive means UTC)."""
    if isinstance(value, bool):
        return None
    to_utc = getattr(value, "utctimetuple", None)
    if callable(to_utc):
        # boto3 gives datetimes. utctimetuple() converts an aware one to UTC and takes a
        # naive one as UTC, where .timestamp() would read the local time zone instead.
        return calendar.timegm(to_utc()) + getattr(value, "microsecond", 0) / 1e6
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _created_at(tags: Mapping[str, str], fallback: Any) -> float | None:
    stamped = _epoch(tags.get(CREATED_AT_TAG))
    if stamped is not None and stamped < PLAUSIBLE_EPOCH:
        # Not a wall-clock time (start_flow falls back to its monotonic Now when the driver
        # passes no created_at): read as 1970 it would make a live sandbox look ancient.
        stamped = None
    return stamped if stamped is not None else _epoch(fallback)


def _run_matches(criteria: GcCriteria, recorded: str, clean: Any) -> bool:
    return criteria.run_id is None or recorded == clean(criteria.run_id)


def select_tasks(tasks: Iterable[Mapping[str, Any]], criteria: GcCriteria) -> list[Orphan]:
    """The tasks to stop among DescribeTasks ``tasks`` (described with ``include=["TAGS"]``).

    Only live tasks (not stopping or stopped) carrying an ``ecs-sandbox:run-id`` tag are
    candidates; the creation time is the ``created-at`` tag, else the task's ``createdAt``.
    """
    selected = []
    for task in tasks:
        arn = task.get("taskArn")
        tags = tag_map(task.get("tags"))
        if not isinstance(arn, str) or RUN_ID_TAG not in tags:
            continue
        if task.get("desiredStatus") == "STOPPED" or task.get("lastStatus", "RUNNING") not in _LIVE:
            continue
        created = _created_at(tags, task.get("createdAt"))
        if _run_matches(criteria, tags[RUN_ID_TAG], _tag_value) and criteria.old_enough(created):
            selected.append(
                Orphan(kind="task", ref=arn, run_id=tags[RUN_ID_TAG], created_at=created)
            )
    return selected


def select_definitions(
    described: Iterable[Mapping[str, Any]],
    criteria: GcCriteria,
    *,
    in_use: Collection[str],
) -> tuple[list[Orphan], list[Orphan]]:
    """``(to_deregister, kept)`` among DescribeTaskDefinition responses (with ``tags``).

    Candidates are ACTIVE revisions of an ``ecs-sandbox-<hex>`` family with an
    ``ecs-sandbox:run-id`` tag; a matching one whose ARN is in ``in_use`` (used by a task the
    sweep does not stop) is kept. The creation time falls back to ``registeredAt``.
    """
    selected: list[Orphan] = []
    kept: list[Orphan] = []
    for response in described:
        definition = response.get("taskDefinition") or {}
        arn = definition.get("taskDefinitionArn")
        tags = tag_map(response.get("tags"))
        if not isinstance(arn, str) or RUN_ID_TAG not in tags:
            continue
        if not _OUR_FAMILY.fullmatch(str(definition.get("family", ""))):
            continue
        if definition.get("status", "ACTIVE") != "ACTIVE":
            continue
        created = _created_at(tags, definition.get("registeredAt"))
        if not (
            _run_matches(criteria, tags[RUN_ID_TAG], _tag_value) and criteria.old_enough(created)
        ):
            continue
        orphan = Orphan(
            kind="task-definition", ref=arn, run_id=tags[RUN_ID_TAG], created_at=created
        )
        (kept if arn in in_use else selected).append(orphan)
    return selected, kept


def staging_prefix(cfg: EcsFargateConfig) -> str:
    """The key prefix under which :func:`staging_key` puts objects (``""`` or ends in ``/``)."""
    prefix = "/".join(_key_part(p) for p in cfg.s3_prefix.split("/") if p)
    return prefix + "/" if prefix else ""


def select_objects(
    cfg: EcsFargateConfig, contents: Iterable[Mapping[str, Any]], criteria: GcCriteria
) -> list[Orphan]:
    """The staged objects to delete among ListObjectsV2 ``Contents`` of ``cfg.s3_bucket``.

    Only keys with :func:`staging_key`'s layout under :func:`staging_prefix` are candidates;
    the run is the key's run component, the creation time its ``LastModified``.
    """
    prefix = staging_prefix(cfg)
    selected = []
    for item in contents:
        key = item.get("Key")
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split("/")
        if len(parts) != 3 or not all(parts) or not _STAGED_NAME.fullmatch(parts[2]):
            continue
        if parts[0] != _key_part(parts[0]) or parts[1] != _key_part(parts[1]):
            continue  # not something _key_part produced
        created = _epoch(item.get("LastModified"))
        if _run_matches(criteria, parts[0], _key_part) and criteria.old_enough(created):
            ref = f"s3://{cfg.s3_bucket}/{key}"
            selected.append(Orphan(kind="object", ref=ref, run_id=parts[0], created_at=created))
    return selected


__all__ = [
    "CREATED_AT_TAG",
    "DESCRIBE_BATCH",
    "FAMILY_PREFIX",
    "OWNER_TAG",
    "PLAUSIBLE_EPOCH",
    "RUN_ID_TAG",
    "TASK_ID_TAG",
    "GcCriteria",
    "GcFailure",
    "GcReport",
    "Kind",
    "Orphan",
    "parse_duration",
    "select_definitions",
    "select_objects",
    "select_tasks",
    "staging_prefix",
    "tag_map",
]
