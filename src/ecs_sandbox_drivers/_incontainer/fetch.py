"""Fetch the staged archive: ``fetch.py URL FILE``; FILE must not exist yet.

Errors name the kind of failure and the HTTP status only (exit 5): urllib's messages can
quote the URL, which is a bearer credential while it is valid.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(url: str, path: str) -> None:
    """Copy ``url`` to a new file ``path`` in 1 MiB chunks."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r, open(path, "xb") as f:  # noqa: S310 - a presigned https URL we made
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
    except urllib.error.HTTPError as e:
        sys.stderr.write(f"ecs-sandbox: could not fetch the staged archive: HTTP {e.code}\n")
        sys.exit(5)
    except Exception as e:
        sys.stderr.write(f"ecs-sandbox: could not fetch the staged archive: {type(e).__name__}\n")
        sys.exit(5)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
