"""Drive a flow generator against a script of expected effects and the results to send back.

A step is ``(expect, result)``. ``expect`` is an effect instance (matched with ``==``), an
effect class (matched with ``isinstance``) or a predicate ``effect -> bool``. ``result`` is
sent into the flow; an exception instance is thrown into it instead, as a driver does when a
handler fails unexpectedly.

``run_script`` fails, naming the step and both effects, when the flow yields something
unexpected, yields more than the script holds, or stops (returns or raises) before the
script is used up. An exception the flow raises after the last step propagates, so
``pytest.raises`` works around ``run_script``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

R = TypeVar("R")

Step = tuple[object, object]  # (effect instance | effect class | predicate, result)


def run_script(flow: Generator[Any, Any, R], steps: Sequence[Step]) -> R:
    """Run ``flow`` to completion against ``steps``; return what the flow returns."""
    seen: list[object] = []
    result: object = None
    for number, (expect, result) in enumerate([(None, None), *steps]):
        # Step 0 starts the flow; step n > 0 checks the n-th effect, then answers it.
        if number > 0:
            effect = seen[-1]
            if not _matches(expect, effect):
                flow.close()
                raise AssertionError(
                    f"step {number}: expected {_describe(expect)}\n"
                    f"        got {effect!r}\neffects so far: {seen!r}"
                )
        try:
            if number == 0:
                effect = next(flow)
            elif isinstance(result, BaseException):
                effect = flow.throw(result)
            else:
                effect = flow.send(result)
        except StopIteration as stop:
            if number < len(steps):
                raise AssertionError(
                    f"flow returned {stop.value!r} after {number} effect(s); the script "
                    f"expected {len(steps)}, next {_describe(steps[number][0])}"
                ) from None
            return stop.value  # type: ignore[no-any-return]
        except Exception as exc:
            if number < len(steps):
                raise AssertionError(
                    f"flow raised {exc!r} after {number} effect(s); the script expected "
                    f"{len(steps)}, next {_describe(steps[number][0])}"
                ) from exc
            raise
        seen.append(effect)
    flow.close()
    raise AssertionError(
        f"flow yielded more effects than the script holds ({len(steps)}): "
        f"unexpected {seen[-1]!r}\neffects so far: {seen!r}"
    )


def _is_predicate(expect: object) -> bool:
    # Effect instances are dataclasses and never callable, but be explicit about it.
    return callable(expect) and not hasattr(expect, "__dataclass_fields__")


def _matches(expect: object, effect: object) -> bool:
    if isinstance(expect, type):
        return isinstance(effect, expect)
    if _is_predicate(expect):
        predicate: Callable[[object], object] = expect  # type: ignore[assignment]
        return bool(predicate(effect))
    return expect == effect


def _describe(expect: object) -> str:
    if isinstance(expect, type):
        return f"an instance of {expect.__name__}"
    if _is_predicate(expect):
        return f"an effect satisfying {getattr(expect, '__name__', repr(expect))}"
    return repr(expect)
