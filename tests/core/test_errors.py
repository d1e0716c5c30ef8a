"""Every public error pickles round trip with its attributes (process-pool harnesses).

The classes are found, not listed: every subclass of ``EcsSandboxError`` that exists once both
packages are imported, plus every exception class either package exports. Each is built from
its own constructor signature with values Hypothesis draws from the annotations, so a class
added later is covered without touching this file.
"""

from __future__ import annotations

import inspect
import pickle
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ecs_sandbox_core
import ecs_sandbox_drivers
from ecs_sandbox_core import EcsSandboxError, ExecTimeoutError, PhaseTimeoutError


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _exported_errors() -> set[type]:
    found = set()
    for module in (ecs_sandbox_core, ecs_sandbox_drivers):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found.add(value)
    return found


ERRORS = sorted(
    {EcsSandboxError} | _subclasses(EcsSandboxError) | _exported_errors(),
    key=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
)

_TEXT = st.text(max_size=40)
_BY_TYPE: dict[Any, st.SearchStrategy[Any]] = {
    str: _TEXT,
    int: st.integers(-(2**40), 2**40),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
}


def _strategy(hint: Any) -> st.SearchStrategy[Any]:
    if hint in _BY_TYPE:
        return _BY_TYPE[hint]
    args = typing.get_args(hint)
    if args:  # a union such as ``int | None`` or ``str | None``
        return st.one_of([_strategy(arg) for arg in args])
    if hint is type(None):
        return st.none()
    return st.from_type(hint)


@st.composite
def instances(draw: st.DrawFn, cls: type[BaseException]) -> tuple[BaseException, dict[str, Any]]:
    """An instance of ``cls`` and the keyword arguments it was built with."""
    hints = typing.get_type_hints(cls.__init__)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not param.empty and not draw(st.booleans()):
            continue  # leave optional arguments out at times: defaults must survive too
        value = draw(_strategy(hints.get(param.name, str)))
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs), kwargs


def test_the_hierarchy_is_found() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"PhaseTimeoutError", "ExecTimeoutError", "UnsafeArchiveError"} <= names
    assert {"ExecOutputTooLargeError", "DownloadTooLargeError", "OutputLimitError"} <= names


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_error_pickles_round_trip(cls: type[BaseException], data: st.DataObject) -> None:
    error, kwargs = data.draw(instances(cls))
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        copy = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(copy) is cls
        assert copy.args == error.args
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
        for name, value in kwargs.items():
            # Keyword arguments come back as the attributes they set, whatever their name.
            if hasattr(error, name):
                assert getattr(copy, name) == getattr(error, name) == value or name == "remedy"


def test_a_pickled_timeout_keeps_its_phase_and_remains_a_timeout() -> None:
    error = ExecTimeoutError("exec did not finish within 5 s", timeout_s=5.0, started=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.phase, copy.timeout_s, copy.started, copy.exit_code) == ("exec", 5.0, True, None)
    assert isinstance(copy, TimeoutError)
    phase = pickle.loads(pickle.dumps(PhaseTimeoutError("slow", phase="wait-running", timeout_s=9)))
    assert (phase.phase, phase.timeout_s, phase.message) == ("wait-running", 9, "slow")
