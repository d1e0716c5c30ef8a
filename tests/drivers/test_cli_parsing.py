"""The command line's own parsers: exec's [ID] -- COMMAND, cp's ID:/PATH, --env, --timeout."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core import UsageError
from ecs_sandbox_drivers import cli
from ecs_sandbox_drivers._cli_commands import _location, env_pairs
from ecs_sandbox_drivers._cli_support import check_timeout

words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
idents = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
paths = st.lists(st.from_regex(r"[A-Za-z0-9_. -]{1,8}", fullmatch=True), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


def _exec_args(argv: list[str]) -> tuple[str | None, list[str]]:
    head, tail = cli._pre_split(argv)
    args = cli._parser().parse_args(head)
    cli._split_exec(args, tail)
    return args.target, args.words


@given(command=st.lists(words, min_size=1, max_size=5))
def test_everything_after_the_double_dash_is_the_command_as_it_is(command: list[str]) -> None:
    # Even words that look like options or like another --.
    assert _exec_args(["exec", "--", *command]) == (None, command)
    assert _exec_args(["--local", "exec", "--timeout", "5", "--", *command]) == (None, command)


@given(ident=idents, command=st.lists(words, min_size=1, max_size=5))
def test_an_id_before_the_command_names_the_sandbox(ident: str, command: list[str]) -> None:
    assert _exec_args(["exec", ident, "--", *command]) == (ident, command)
    assert _exec_args(["exec", "--local", ident, "--", *command]) == (ident, command)


def test_without_the_double_dash_the_first_word_is_the_id_as_in_docker_exec() -> None:
    assert _exec_args(["exec", "sbx-1", "uname", "-a"]) == ("sbx-1", ["uname", "-a"])
    with pytest.raises(UsageError, match="one sandbox ID"):
        _exec_args(["exec", "a", "b", "--", "true"])


@given(ident=idents, path=paths)
def test_a_colon_before_the_first_slash_marks_a_sandbox_path(ident: str, path: str) -> None:
    assert _location(f"{ident}:{path}") == (ident, path)


@given(path=st.text(max_size=30))
def test_local_paths_stay_local(path: str) -> None:
    # An absolute or ./ path is always local, colons or not (docker cp's rule).
    for local in ("/" + path, "./" + path):
        assert _location(local) == (None, local)


@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), value=st.text())
def test_env_pairs_keep_the_value_whole(name: str, value: str) -> None:
    assert env_pairs([f"{name}={value}"]) == {name: value}


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_env_pairs_refuse_what_is_not_name_value(bad: str) -> None:
    with pytest.raises(UsageError):
        env_pairs([bad])


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_timeout_is_positive_or_infinite(value: float) -> None:
    if value > 0:  # inf included
        check_timeout(value)
    else:
        assert value <= 0 or math.isnan(value)
        with pytest.raises(UsageError):
            check_timeout(value)
