#!/bin/sh
# Installs the Debian packages the local sandboxes need (tmux, bubblewrap) when they are missing,
# and busybox, whose sh the wrapper and command-loop tests run under as a third shell.
set -eu
missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v busybox >/dev/null 2>&1 || missing="$missing busybox"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "installing:$missing" >&2
$SUDO apt-get install -y -q $missing >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q $missing >/dev/null
}
