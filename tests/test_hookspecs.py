"""Every hook is documented in docs/plugin_hooks.md and has a test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from caseforum import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(
    name for name in dir(hookspecs)
    if not name.startswith("_") and hasattr(getattr(hookspecs, name), "caseforum_spec")
)


def test_there_are_hooks() -> None:
    assert "register_dossier_sources" in HOOKS and len(HOOKS) >= 11


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    assert re.search(rf"^### {hook}\b", docs, re.MULTILINE), f"docs lack '### {hook}'"
    assert getattr(hookspecs, hook).__doc__, f"hookspecs.{hook} lacks a docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}(?:\b|_)", sources), f"no test_hook_{hook}"
