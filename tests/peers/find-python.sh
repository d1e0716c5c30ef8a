#!/bin/sh
# Print the first interpreter that really runs and is Python >= 3.12 (Harbor's minimum):
# $PEERS_PY, then python3.12..python3.14 on PATH (a pyenv shim may refuse to run, so each
# is probed), then pyenv's installed versions. Exit 1 with a message when there is none.
probe() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}
for candidate in ${PEERS_PY:-} python3.12 python3.13 python3.14 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[234].*/bin/python3; do
    if probe "$candidate"; then
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        exit 0
    fi
done
echo "make peers needs Python >= 3.12 (Harbor's minimum); set PEERS_PY=/path/to/python3.12" >&2
exit 1
