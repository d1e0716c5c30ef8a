"""The read script: one POSIX sh script that reads only what is new in a pane.

It implements the search described in :mod:`ecs_sandbox_core._pane`. Every attempt

1. takes the geometry ``h`` (from ``display``, or from the previous attempt's list) and
   decides what to capture: the windows that locate the old rows (the deep row and the
   anchor at each shift still possible) and either the new rows or, when their place
   cannot be proven, rows for a screen;
2. runs ONE tmux command list ``display ; capture windows... ; capture rows``, which tmux
   executes without handling pane output in between, and accepts it only if it begins
   with the geometry and window contents the decision was made on (``E``). Otherwise
   output arrived meanwhile, and the attempt is repeated with the list's own geometry.

Without possible drops (``H <= L - chunk``) there is one place to check, so the windows are
not read before the list: ``E`` holds their expected text. If they differ while the
geometry is the same, the next attempt reads a screen (``P``): from row 0 when a row of the
old history changed (``kept``), else from the old screen's top. With possible drops, the
anchor's last non-blank row (``x``) is read at every shift in one tmux call (``R``), the
whole window only where it matches (``w``), counting matches (``m``); a single match gives
the new rows, no match or several a screen (``K=f``). Both go into the list's ``E``, since
windows read on an outdated geometry prove nothing. After MAX_ATTEMPTS, or for a first
read, a changed geometry, the alternate screen or an anchor with nothing non-blank, ``g``
reads the screen in one command list.

The script prints ``<geometry> <kind> <value>`` and the captured rows (see
:class:`ecs_sandbox_core._pane.PaneHeader`), and exits 3 when the session is missing.
Pane text reaches the shell only as single-quoted words; everything else is digits.
"""

from __future__ import annotations

import shlex

from ._pane import EXTRA_ROWS, MAX_ATTEMPTS, CaptureRequest

GEOMETRY = (
    "#{history_size} #{history_limit} #{cursor_y} #{pane_height} #{pane_width} #{alternate_on}"
)
"""The pane's geometry as the read script reads it (a tmux format: digits and spaces)."""

# Double quotes and \; rather than single quotes: the exec wrapper quotes the whole script
# again, and every single quote costs five characters there.
_FORMAT = f'"{GEOMETRY}"'

# g: the screen (and EXTRA_ROWS above it) with its geometry, in one tmux command list. The
# list ends with a "." line, which keeps the rows' last newline through $(...): tmux prints
# it, so the $(...) is the tmux client itself (an "; echo ." made it fork one more process).
_SCREEN = f"""g() {{
o=$(tmux $d "$f" \\; $c -S -{EXTRA_ROWS} -E - \\; $d .)
h=${{o%%"$nl"*}}; set -- $h
[ $# = 6 ] || {{ echo "tmux: no such session" >&2; exit 3; }}
o=${{o#*"$nl"}}; printf "%s f 0\\n%s" "$h" "${{o%.}}"; exit 0
}}"""


def read_script(target: str, request: CaptureRequest, *, looked: bool = False) -> str:
    """The read script for the pane ``target`` (a tmux target such as ``=name:``).

    ``looked``: the script runs after a look at the pane that left its geometry in ``G``
    (empty if none; see :func:`ecs_sandbox_core._terminal.wait_functions`), the first
    attempt's guess instead of a tmux call of its own. A guess that is out of date only
    costs an attempt: every attempt is checked against the geometry its own list reads.
    """
    t = shlex.quote(target)
    head = f'set -f\nT={t} f={_FORMAT} nl="\n"\nd="display -p -t $T" c="capture-pane -p -t $T"\n'
    head += _SCREEN
    if request.first:
        return head + "\ng"
    return head + "\n" + _search(request, looked=looked)


def _search(r: CaptureRequest, *, looked: bool) -> str:
    n, chunk, c0 = len(r.anchor), r.chunk, r.cursor
    deep_rows = r.deep + "\n" if r.deep_top >= 0 else ""
    anchor = shlex.quote("".join(row + "\n" for row in r.anchor))
    # The remembered rows that were history at the last read (the deep row and the top of
    # the anchor, as the exact read lists them): only a reset changes them.
    kept = shlex.quote(
        deep_rows + "".join(row + "\n" for row in r.anchor[: max(0, r.history_size - r.anchor_top)])
    )
    # k = 0 without possible drops: the deep row and the anchor where they were.
    exact = " ; ".join(
        part
        for part in (
            _capture(str(r.deep_top)) if r.deep_top >= 0 else "",
            _capture(str(r.anchor_top), str(c0 - 1)) if n else "",
        )
        if part
    )
    exact_x = f' X=" ; {exact}"' if exact else ""
    geometry = f"6:{r.history_limit}:{r.pane_height}:{r.pane_width}:0"
    return f"""A={anchor} D={shlex.quote(deep_rows)} P= Q= i=0
{'h=$G; [ -n "$h" ] || ' if looked else ""}h=$(tmux $d "$f")
while [ $i -lt {MAX_ATTEMPTS} ]; do
i=$((i+1))
set -- $h
[ "$#:$2:$4:$5:$6" = {geometry} ] || g
H=$1 Y=$(($1+$3)) E="$h$nl" X= K=s
if [ -n "$P" ]; then V=$P
elif [ $H -le {r.history_limit - chunk} ]; then
if [ $H -lt {r.history_size} ]; then V=0
elif [ {c0} -le $Y ]; then K=n V=0 Q=1 E=$E$D$A{exact_x}
else V={r.history_size}
fi
else
{_shifted(r)}
fi
if [ $K = n ]; then S=$(({c0}-V*{chunk}-H)) B=$3
elif [ $K = s ]; then S=$((V-{EXTRA_ROWS})); [ $S -ge 0 ] || S=0; S=$((S-H)) B=$3
else S=-{EXTRA_ROWS} B=-
fi
o=$(tmux $d "$f"$X \\; $c -S $S -E $B \\; $d .)
case $o in "$E"*) o=${{o#"$E"}}; printf "%s %s %s\\n%s" "$h" $K $V "${{o%.}}"; exit 0;; esac
P=
if [ -n "$Q" ]; then Q=; case $o in "$h$nl"{kept}*) P={r.history_size};; "$h$nl"*) P=0;; esac; fi
h=${{o%%"$nl"*}}
done
g"""


def _capture(top: str, bottom: str | None = None) -> str:
    """capture-pane of absolute rows ``top``..``bottom`` (shell arithmetic; H is known)."""
    return f"$c -S $(({top}-H)) -E $(({bottom or top}-H))"


def _shifted(r: CaptureRequest) -> str:
    """The search over every shift k that keeps the anchor in the pane, above the cursor."""
    if r.weak:
        return "g"  # nothing to recognise after a drop
    n, chunk, c0, d0 = len(r.anchor), r.chunk, r.cursor, r.deep_top
    last = _last_shift(r)
    valid = (
        f"v() {{ [ $(({c0}-k*{chunk})) -le $Y ] && "
        f"{{ [ $k -gt 0 ] || [ $H -ge {r.history_size} ]; }}; }}"
    )
    # The window at shift k: the anchor rows tmux still holds, after the deep row if held.
    window = "\n".join(
        [
            f"t=$(({r.anchor_top}-k*{chunk})) e=$A",
            'while [ $t -lt 0 ]; do e=${e#*"$nl"} t=$((t+1)); done',
            f'a="{_capture("t", f"{c0 - 1}-k*{chunk}") if n else ""}"',
            f'u=$(({d0}-k*{chunk})); [ $u -ge 0 ] && a="{_capture("u")}${{a:+ ; }}$a" e=$D$A'
            if d0 >= 0
            else ":",
            'if [ -n "$a" ]; then w=$(tmux $a; echo .); w=${w%.}; E=$E$w X="$X ; $a"',
            "else w=$e; fi",
            'case $w in "$e") m=$((m+1)) F=$k;; esac',
        ]
    )
    marks = [i for i, row in enumerate(r.anchor) if row.strip()]
    if not marks:
        check = window
        prefilter = ""
    else:
        # One row of the anchor, its last non-blank one, read at every shift in one tmux
        # call first: only the shifts where it matches need the whole window.
        mark = r.anchor_top + marks[-1]
        check = f'l=${{R%%"$nl"*}}; R=${{R#*"$nl"}}\ncase $l in "$x")\n{window};;\nesac'
        prefilter = f"""x={shlex.quote(r.anchor[marks[-1]])} k=0 Z=
while [ $k -le {last} ]; do
v && Z="${{Z:+$Z ; }}{_capture(f"{mark}-k*{chunk}")}"
k=$((k+1))
done
R=; if [ -n "$Z" ]; then R=$(tmux $Z; echo .); R=${{R%.}}; E=$E$R X="$X ; $Z"; fi
"""
    return f"""{valid}
{prefilter}k=0 m=0
while [ $k -le {last} ] && [ $m -lt 2 ]; do
if v; then
{check}
fi
k=$((k+1))
done
if [ $m = 1 ]; then K=n V=$F; else K=f V=0; fi"""


def _last_shift(r: CaptureRequest) -> int:
    """The largest shift to try: the anchor's window must still be in the pane.

    A window whose top tmux dropped is compared on the rows it still holds, as long as
    they include a non-blank anchor row: if the anchor was there, another match must not
    look single. Blank rows alone would match almost anywhere and prove nothing.
    """
    n, chunk = len(r.anchor), r.chunk
    k = r.anchor_top // chunk
    while n:
        top = r.anchor_top - (k + 1) * chunk  # negative: rows dropped from the window
        if top + n <= 0 or not any(row.strip() for row in r.anchor[-top:]):
            break
        k += 1
    return k


__all__ = ["GEOMETRY", "read_script"]
