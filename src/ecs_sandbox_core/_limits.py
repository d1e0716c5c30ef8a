"""Limits on what a sandbox can send back: a command's output and a download.

A command can print without end, and a download can be a gzip bomb (kilobytes that unpack to
terabytes), so nothing that comes back is kept, unpacked or written without being counted
against a configured limit first.

Exec output. The core puts the limit on each :class:`~ecs_sandbox_core.ExecRun`
(``max_output_bytes``). Whatever reads the transport (a subprocess reader, a native
client) keeps at most ``limit + 1`` bytes of the session stream, with an
:class:`OutputCap`, and ends the run as soon as it has more than ``limit``: one byte past
the limit is enough to tell "too much" from "exactly the limit", and memory stays bounded.
The flow then sees :func:`exceeds` hold for the stream it got back and raises
:class:`~ecs_sandbox_core.ExecOutputTooLargeError`.

Downloads. The archive comes back in the exec stream, so that stream is bounded by
:func:`download_stream_limit` (the compressed archive, base64-framed, can never be larger
than that for an archive within the limit). Before anything is read out of the archive, its
*uncompressed* size is measured by inflating it into nothing, stopping one chunk past
``max_download_bytes``; its members are counted, stopping past ``max_download_members``.
A gzip bomb so costs at most ``max_download_bytes`` of decompression work, and nothing of it
is kept.
"""

from __future__ import annotations

import zlib

from ._errors import EcsExecError, ExecOutputTooLargeError

DEFAULT_MAX_EXEC_OUTPUT_BYTES = 64 * 1024 * 1024
"""Session-stream bytes one exec round trip may deliver (markers and framing included)."""
DEFAULT_MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
"""Uncompressed archive bytes one download may unpack to (file contents and tar headers)."""
DEFAULT_MAX_DOWNLOAD_MEMBERS = 100_000
"""Files, directories and links one download may hold."""

_INFLATE_CHUNK = 1 << 20


def exceeds(size: int, limit: int | None) -> bool:
    """Whether ``size`` bytes go past ``limit`` (``None``: no limit)."""
    return limit is not None and size > limit


class OutputCap:
    """Counts a stream against a limit and says which part of each chunk to keep.

    ``take(chunk)`` returns the part of ``chunk`` that fits in ``limit + 1`` bytes overall;
    once :attr:`exceeded` is true the reader should end the run (everything more is
    dropped). With ``limit=None`` every chunk is kept whole.
    """

    __slots__ = ("_kept", "limit")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"limit must be an int or None, not {limit!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        self.limit = limit
        self._kept = 0

    @property
    def kept(self) -> int:
        """Bytes kept so far."""
        return self._kept

    @property
    def exceeded(self) -> bool:
        """True once more than ``limit`` bytes arrived."""
        return exceeds(self._kept, self.limit)

    def take(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` to keep (all of it, a prefix, or nothing)."""
        if self.limit is None:
            self._kept += len(chunk)
            return chunk
        room = self.limit + 1 - self._kept
        if room <= 0:
            return b""
        kept = chunk[:room]
        self._kept += len(kept)
        return kept


def output_too_large(limit: int) -> ExecOutputTooLargeError:
    """The error for a command whose session stream went past ``limit`` bytes."""
    return ExecOutputTooLargeError(
        f"the command printed more than {limit} bytes (max_exec_output_bytes); it was stopped "
        "there and may have run in part (it is not run again)",
        limit=limit,
    )


def download_stream_limit(max_download_bytes: int) -> int:
    """The most session-stream bytes a download within ``max_download_bytes`` can need.

    Deflate never grows data by more than a few bytes per 16 KiB block, base64 adds a third
    and a PTY's line ends a little more; half again plus a MiB for the framing covers all of
    it, so only an archive that is too large anyway is cut off early.
    """
    return max_download_bytes + max_download_bytes // 2 + (1 << 20)


def inflated_size(data: bytes, limit: int) -> int:
    """The uncompressed size of gzip ``data``, or the first count past ``limit``.

    Concatenated gzip members and zero padding after them are read as gzip readers do.
    Raises :class:`EcsExecError` when ``data`` is not gzip or ends early. Nothing
    inflated is kept; the work done is at most ``limit`` plus one chunk.
    """
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)  # a gzip header and trailer
        pending = rest
        try:
            while not inflater.eof:
                out = inflater.decompress(pending, _INFLATE_CHUNK)
                pending = inflater.unconsumed_tail
                total += len(out)
                if total > limit:
                    return total
                if not out and not pending and not inflater.eof:
                    raise EcsExecError(
                        "the archive from the sandbox ends in the middle of its gzip stream",
                        remedy="The download was probably cut off; try again.",
                    )
        except zlib.error as exc:
            raise EcsExecError(
                f"the archive from the sandbox is not a readable gzip tar ({exc})",
                remedy="The download was probably cut off; try again.",
            ) from None
        rest = inflater.unused_data.lstrip(b"\0")
    return total


__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_DOWNLOAD_MEMBERS",
    "DEFAULT_MAX_EXEC_OUTPUT_BYTES",
    "OutputCap",
    "download_stream_limit",
    "exceeds",
    "inflated_size",
    "output_too_large",
]
