"""A small real inspect_ai eval on ``sandbox="ecs"`` (the local ECS): a scripted model
(``mockllm/model``) calls inspect's own ``bash``, ``python``, ``text_editor`` and
``bash_session`` tools, and the sample is scored. Skipped without inspect_ai.

The scripted outputs carry their token usage: without it mockllm counts tokens with
tiktoken, which downloads its encoding from the internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import includes
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import bash, bash_session, python, text_editor

MODEL = "mockllm/model"
# The suite's "warnings are errors" is for this project's code. inspect's dependencies
# (tenacity, ...) warn about their own deprecated parameters, and inspect's tool calling
# leaves an anyio memory stream unclosed (ecs-sandbox creates none: a grep of src finds no
# create_memory_object_stream), reported as an unraisable ResourceWarning.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _outputs() -> list[Any]:
    outputs = [
        ModelOutput.for_tool_call(MODEL, "bash", {"command": "echo from-bash; id -u"}),
        ModelOutput.for_tool_call(MODEL, "python", {"code": "print(6 * 7)"}),
        ModelOutput.for_tool_call(
            MODEL,
            "text_editor",
            {"command": "create", "path": "/tmp/notes.txt", "file_text": "alpha\n"},
        ),
        ModelOutput.for_tool_call(
            MODEL,
            "text_editor",
            {
                "command": "str_replace",
                "path": "/tmp/notes.txt",
                "old_str": "alpha",
                "new_str": "beta",
            },
        ),
        ModelOutput.for_tool_call(MODEL, "bash", {"command": "cat /tmp/notes.txt"}),
        # bash_session keeps a shell between calls: its tool server must outlive the exec
        # that started it (keep_background).
        ModelOutput.for_tool_call(
            MODEL, "bash_session", {"action": "type_submit", "input": "cd /tmp && X=7"}
        ),
        ModelOutput.for_tool_call(
            MODEL, "bash_session", {"action": "type_submit", "input": "echo $X-$(pwd)"}
        ),
        ModelOutput.from_content(MODEL, "the answer is 42"),
    ]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return outputs


def test_a_small_eval_with_inspects_tools_passes(tmp_path: Path) -> None:
    config = tmp_path / "ecs-sandbox.toml"
    config.write_text("local = true\n")
    task = Task(
        dataset=[Sample(input="use the tools", target="42")],
        solver=[use_tools([bash(), python(), text_editor(), bash_session()]), generate()],
        scorer=includes(),
        sandbox=("ecs", str(config)),
    )
    (log,) = eval(
        task,
        model=get_model(MODEL, custom_outputs=_outputs()),
        display="none",
        log_dir=str(tmp_path / "logs"),
    )
    assert log.status == "success", log.error
    (sample,) = log.samples or []
    results = [m.text for m in sample.messages if m.role == "tool"]
    errors = [m.error for m in sample.messages if m.role == "tool" and m.error is not None]
    assert errors == []
    assert results[0] == "from-bash\n0\n"
    assert results[1] == "42\n"
    assert "created" in results[2].lower() and "edited" in results[3].lower()
    assert results[4] == "beta\n"
    assert "7-/tmp" in results[6]
    assert sample.scores is not None and sample.scores["includes"].value == "C"
