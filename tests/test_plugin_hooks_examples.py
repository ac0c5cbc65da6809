"""Every code example in docs/plugin_hooks.md runs, and the dossier-source example
works in the app: a plugin author who copies it gets a number box that answers.

(The example of ``register_dossier_sources`` used to make the number box answer
500: its ``lookup`` did not take the arguments the host passed.)
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caseforum import PROJECT
from caseforum.app import create_app
from caseforum.config import Settings
from caseforum.plugin_host import PluginHost
from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugin_hooks.md"
# the one-line signatures at the head of each hook's section are not examples
SIGNATURE = re.compile(r"\w+\(.*\)( -> .*)?(\s+#.*)?")
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
          if not SIGNATURE.fullmatch(b.strip())]
# hooks the host can call without an application around them
CALLS = {
    "register_dossier_sources": lambda h: h.dossier_sources(),
    "register_notification_channels": lambda h: h.notification_channels(),
    "register_transfer_routes": lambda h: h.transfer_routes(),
    "register_bots": lambda h: h.bots(),
    "register_reference_patterns": lambda h: h.reference_patterns(),
    "register_document_types": lambda h: h.document_types(),
    "register_migrations": lambda h: h.migrations(),
    "register_routes": lambda h: h.routes(),
    "extra_nav_items": lambda h: h.nav_items(user=None),
    "register_storage_backends": lambda h: h.storage_backends(),
}


def _run(index: int, tmp_path: Path) -> types.ModuleType:
    module = types.ModuleType(f"plugin_hooks_example_{index}")
    module.__file__ = str(tmp_path / "plugin.py")
    exec(compile(BLOCKS[index], f"docs/plugin_hooks.md example {index + 1}", "exec"),
         module.__dict__)
    return module


def _hooks(module: types.ModuleType) -> list[str]:
    return [name for name, value in vars(module).items()
            if callable(value) and hasattr(value, f"{PROJECT}_impl")]


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 15
    assert any("def register_dossier_sources" in b for b in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"example{i + 1}")
def test_example_runs(index: int, tmp_path: Path) -> None:
    module = _run(index, tmp_path)
    for name, value in list(vars(module).items()):
        if name.startswith("test_") and callable(value):
            value()  # an example of a test: it must pass
    hooks = _hooks(module)
    if not hooks:
        return
    host = PluginHost()
    host.load(use_entry_points=False)
    record = host.add(module, name=f"example{index + 1}")
    assert record.state == "enabled", record.error
    assert sorted(record.hooks) == sorted(hooks)
    for hook in hooks:
        if hook in CALLS:
            CALLS[hook](host)
    assert record.hook_errors == {}
    assert all(not s.problem for s in host.source_health()), host.source_health()


def _source_example(tmp_path: Path) -> types.ModuleType:
    index = next(i for i, b in enumerate(BLOCKS) if "def register_dossier_sources" in b)
    return _run(index, tmp_path)


def _app_with(example: types.ModuleType, settings: Settings) -> Any:
    host = PluginHost()
    host.load()
    host.add(example, name="paper_archive")
    return create_app(settings, plugins=host)


def test_the_documented_source_answers_the_number_box(settings: Settings,
                                                       tmp_path: Path) -> None:
    with TestClient(_app_with(_source_example(tmp_path), settings)) as client:
        login(client, "kr.examiner")
        page = client.get("/dossiers", params={"q": "NZ 123456"})
        assert page.status_code == 200
        assert "Kiwi fruit peeler" in page.text
        assert "From NZ paper archive, last refreshed" in page.text
        doc_id = int(re.search(r'href="/documents/(\d+)"', page.text).group(1))
        content = client.get(f"/documents/{doc_id}/content")
        assert content.status_code == 200
        assert content.content.startswith(b"%PDF-")


def test_the_admin_page_names_the_documented_source_when_it_raises(
        settings: Settings, tmp_path: Path) -> None:
    example = _source_example(tmp_path)

    def broken(self: Any, number: str, *, office: str | None = None) -> list[Any]:
        raise ConnectionError("the archive's scanner is offline")

    example.PaperArchive.lookup = broken
    with TestClient(_app_with(example, settings)) as client:
        login(client, "kr.examiner")
        page = client.get("/dossiers", params={"q": "NZ 123456"})
        assert page.status_code == 503  # not a 500: the page says which source failed
        assert "NZ paper archive failed: the archive&#39;s scanner is offline" in page.text
        held = client.get("/dossiers", params={"q": "JP 2019-041872"})  # held here
        login(client, "admin")
        admin = client.get("/admin/plugins").text
    assert held.status_code == 200 and "2019-041872" in held.text
    row = admin[admin.index('id="source-paper_archive"'):]
    row = row[:row.index("</tr>")]
    assert "failing" in row and "ConnectionError: the archive&#39;s scanner is offline" in row
