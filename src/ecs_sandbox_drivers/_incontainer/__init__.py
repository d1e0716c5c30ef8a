"""Programs that run inside the container, not in this process.

File transfer needs a little Python on the far side: fetching the staged archive, checking
and extracting it, packing a download. Those programs live here as ordinary source files so
that ruff, mypy and the tests see them and tests can run them directly. They run with
whatever ``python3`` the image has (3.8 or newer), where ecs-sandbox is not installed, so
they import nothing but the standard library; :mod:`.common` is the one exception, and it is
pasted into each script when it is embedded.

They live in the drivers package, not in the core: they do I/O (in the container), and the
core stays pure (no module of ``ecs_sandbox_core`` does any); the core holds only their
text and never imports this package. ``scripts/gen_incontainer.py`` embeds the sources as
string constants in :mod:`ecs_sandbox_core._incontainer_gen`, and
``tests/core/test_incontainer.py`` fails when that module is stale.
"""
