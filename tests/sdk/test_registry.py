"""Task registrations, the module-level decorator and loading task modules."""

from __future__ import annotations

import sys
import textwrap

import pytest

import absurd_tui
from absurd_tui.sdk import (
    TaskModuleError,
    TaskRegistry,
    default_registry,
    load_task_modules,
)
from absurd_tui.sdk.registry import register_task


def test_module_level_decorator_registers_into_the_default_registry():
    @absurd_tui.register_task(
        "reg-test-module-level",
        queue="mail",
        default_max_attempts=3,
        default_cancellation={"max_duration": 60},
    )
    def handler(params, ctx):
        return params

    try:
        registration = default_registry.get("reg-test-module-level")
        assert registration is not None
        assert registration.handler is handler
        assert registration.queue == "mail"
        assert registration.default_max_attempts == 3
        assert dict(registration.default_cancellation) == {"max_duration": 60}
        assert "reg-test-module-level" in default_registry.names()
    finally:
        default_registry.unregister("reg-test-module-level")


def test_queue_defaults_to_default_and_reregistering_replaces():
    registry = TaskRegistry()
    registry.register("t", lambda p, c: 1)
    assert registry.get("t").queue == "default"

    def second(p, c):
        return 2

    registry.register("t", second, queue="other")
    assert registry.get("t").handler is second
    assert registry.queues() == ["other"]
    assert len(registry) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": ""}, "non-empty"),
        ({"name": "x", "queue": "q" * 58}, "too long"),
        ({"name": "x", "default_max_attempts": 0}, "from 1 to"),
    ],
)
def test_bad_registrations_are_refused(kwargs, message):
    registry = TaskRegistry()
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=message):
        registry.register(name, lambda p, c: None, **kwargs)
    assert len(registry) == 0


def test_load_task_modules_by_dotted_name_and_by_path(tmp_path, monkeypatch):
    package = tmp_path / "regpkg_one"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        textwrap.dedent("""
        from absurd_tui import register_task

        @register_task("reg-test-dotted", queue="q1")
        def dotted(params, ctx):
            return "dotted"
    """)
    )
    loose = tmp_path / "elsewhere" / "loose_tasks.py"
    loose.parent.mkdir()
    (loose.parent / "loose_helper.py").write_text("VALUE = 'helper'\n")
    loose.write_text(
        textwrap.dedent("""
        from absurd_tui import register_task
        from loose_helper import VALUE

        @register_task("reg-test-path")
        def by_path(params, ctx):
            return VALUE
    """)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        modules = load_task_modules(["regpkg_one.tasks", str(loose)])
        assert modules[0].__name__ == "regpkg_one.tasks"
        assert default_registry.get("reg-test-dotted").queue == "q1"
        assert default_registry.get("reg-test-path").handler(None, None) == "helper"
        # Loading the same file again does not import it twice.
        assert load_task_modules([str(loose)])[0] is modules[1]
    finally:
        default_registry.unregister("reg-test-dotted")
        default_registry.unregister("reg-test-path")
        for name in [n for n in sys.modules if n.startswith(("regpkg_one", "absurd_tasks_loose"))]:
            del sys.modules[name]


def test_missing_module_and_missing_file_give_clear_errors(tmp_path):
    with pytest.raises(TaskModuleError, match='Cannot find the task module "no_such_tasks_mod"'):
        load_task_modules(["no_such_tasks_mod"])
    missing = tmp_path / "nope.py"
    with pytest.raises(TaskModuleError, match="does not exist"):
        load_task_modules([str(missing)])


def test_a_module_that_raises_reports_the_error_and_chains_it(tmp_path):
    broken = tmp_path / "broken_tasks.py"
    broken.write_text("import json\nraise RuntimeError('boom at import')\n")
    with pytest.raises(TaskModuleError, match="RuntimeError: boom at import") as info:
        load_task_modules([str(broken)])
    assert isinstance(info.value.__cause__, RuntimeError)
    inner = tmp_path / "inner_missing.py"
    inner.write_text("import not_installed_dependency_xyz\n")
    with pytest.raises(TaskModuleError, match="not_installed_dependency_xyz"):
        load_task_modules([str(inner)])


def test_register_task_is_reexported():
    assert absurd_tui.register_task is register_task


def test_async_handlers_are_refused_with_a_reason():
    async def handler(params, ctx):
        return None

    with pytest.raises(TypeError, match="is async"):
        TaskRegistry().register("a", handler)
