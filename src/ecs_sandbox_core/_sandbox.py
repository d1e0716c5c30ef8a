"""Per-sandbox flows: the lifecycle, exec, transfer and session flows bound to one task.

Both drivers' public classes are thin: each method builds one of these flows and runs it.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._config import EcsFargateConfig
from ._effects import Effect, Token, time_limit
from ._errors import UsageError
from ._exec_flow import ExecResult, exec_flow
from ._lifecycle import TaskHandle
from ._session import ScriptRunner
from ._transfer_flow import delete_object_flow, stage_object_flow, staging_key


@dataclass(frozen=True, kw_only=True)
class SandboxContext:
    """What the per-sandbox flows need to know about the running task."""

    cfg: EcsFargateConfig
    handle: TaskHandle
    trial_name: str
    pty: bool = False

    @property
    def native(self) -> bool:
        """True when commands go over ECS Exec's data channel, spoken natively."""
        return self.cfg.exec_transport == "ssm"


def command_flow(
    ctx: SandboxContext,
    command: str | Sequence[str],
    *,
    timeout_s: float | None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    binary: bool = False,
    stream: bool = False,
    user: str | None = None,
    stdin: bytes | None = None,
    separate: bool = False,
    keep_background: bool = False,
) -> Generator[Effect, Any, ExecResult]:
    """Run ``command`` in the sandbox, staging over-long scripts through S3.

    ``user``, ``stdin``, ``separate`` and ``keep_background`` are
    :func:`~._exec_flow.exec_flow`'s.

    ``timeout_s`` None (or ``inf``) means no limit. A staged script is deleted once the
    command has run, whatever happened.
    """
    cfg = ctx.cfg
    limit = time_limit(timeout_s, what="timeout_sec")
    staged: list[str] = []

    def stage(script: str) -> Generator[Effect, Any, str]:
        if cfg.s3_bucket is None:
            raise UsageError(
                "the command is too long to pass inline and no s3_bucket is configured",
                remedy="Set s3_bucket so that long commands can be staged as files.",
            )
        token = yield Token(nbytes=8)
        key = staging_key(
            cfg,
            run_id=ctx.handle.run_id,
            task_id=ctx.handle.task_id,
            token=token,
            suffix="exec.sh",
        )
        url = yield from stage_object_flow(bucket=cfg.s3_bucket, key=key, body=script.encode())
        staged.append(key)
        return url

    try:
        return (
            yield from exec_flow(
                task_arn=ctx.handle.task_arn,
                container=cfg.container_name,
                cluster=ctx.handle.cluster,
                command=command,
                timeout_s=limit,
                connect_timeout_s=cfg.exec_connect_timeout_sec,
                binary=binary,
                env=env,
                cwd=cwd,
                pty=ctx.pty,
                stage=stage,
                stream=stream,
                native=ctx.native,
                loop_sessions=cfg.loop_sessions,
                max_output_bytes=cfg.max_exec_output_bytes,
                user=user,
                stdin=stdin,
                separate=separate,
                keep_background=keep_background,
            )
        )
    finally:
        for key in staged:
            assert cfg.s3_bucket is not None
            yield from delete_object_flow(bucket=cfg.s3_bucket, key=key)


def caller_command_flow(
    ctx: SandboxContext,
    command: str | Sequence[str],
    *,
    timeout_s: float | None,
    user: str | None = None,
    cwd: str | None = None,
    **options: Any,
) -> Generator[Effect, Any, ExecResult]:
    """:func:`command_flow` for a command a caller asked for: the configuration's
    ``exec_user`` and ``exec_workdir`` stand in for a ``user`` and ``cwd`` the call does not
    give (the image's ``USER`` and ``WORKDIR`` under ``docker exec``). The library's own
    scripts use :func:`command_flow` directly and keep running as root where they start."""
    return command_flow(
        ctx,
        command,
        timeout_s=timeout_s,
        user=ctx.cfg.exec_user if user is None else user,
        cwd=ctx.cfg.exec_workdir if cwd is None else cwd,
        **options,
    )


def script_runner(ctx: SandboxContext) -> ScriptRunner:
    """Bind :func:`command_flow` for the session flows (scripts are POSIX sh text)."""

    def run(script: str, timeout_s: float | None) -> Generator[Effect, Any, ExecResult]:
        return command_flow(ctx, script, timeout_s=timeout_s)

    return run


__all__ = ["SandboxContext", "caller_command_flow", "command_flow", "script_runner"]
