"""LocalAws's controls of its API middleware: request and reply hooks, the call counter.

A mixin, as :mod:`._server_ssm` is for the SSM gateway: :class:`._server.LocalAws` owns the
middleware and its life cycle. Hooks added before start-up are kept and installed when the
middleware is made, so that a test can intercept the very first requests.
"""

from __future__ import annotations

from collections import Counter

from ._middleware import Hook, Middleware, ReplyHook


class ApiKnobs:
    """The middleware's hooks and counters, on LocalAws."""

    _middleware: Middleware | None
    _pending_hooks: list[Hook]

    @property
    def calls(self) -> Counter[str]:
        """API calls served since start-up, by operation (``RunTask``, ``s3 PUT``, ...)."""
        return self._require_middleware().calls

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook`` on every API request before moto; it may answer or change it."""
        if self._middleware is None:
            self._pending_hooks.append(hook)
        else:
            self._middleware.add_hook(hook)

    def remove_hook(self, hook: Hook) -> None:
        """Stop running a hook added with :meth:`add_hook`."""
        self._require_middleware().remove_hook(hook)

    def add_reply_hook(self, hook: ReplyHook) -> None:
        """Run ``hook`` on every answer; it may replace it (the work is done all the same)."""
        self._require_middleware().add_reply_hook(hook)

    def remove_reply_hook(self, hook: ReplyHook) -> None:
        """Stop running a hook added with :meth:`add_reply_hook`."""
        self._require_middleware().remove_reply_hook(hook)

    def _require_middleware(self) -> Middleware:
        if self._middleware is None:
            raise RuntimeError("LocalAws is not started")
        return self._middleware


__all__ = ["ApiKnobs"]
