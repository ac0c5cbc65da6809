"""The plugin manager: loading, state, and one typed method per hook.

Load order follows ARCHITECTURE section 3: installed entry points (group
``caseforum``), then the built-in ``DEFAULT_PLUGINS``, then
``check_pending()``.  A plugin that fails to import, or whose settings do not
validate, is recorded as *failed* and left out; the application still starts.
Collection hooks are called one plugin at a time so that one plugin raising
does not take the page down with it; the error is kept for the admin page.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from caseforum import PROJECT, __version__, errors, hookspecs
from caseforum.sources import GuardedSource, SourceHealth, contract_problem

log = logging.getLogger(__name__)
SECRET_WORDS = re.compile(r"secret|password|token|key", re.IGNORECASE)

DEFAULT_PLUGINS: tuple[str, ...] = (
    "caseforum.plugins.navigation",
    "caseforum.plugins.numbering",
    "caseforum.plugins.document_types",
    "caseforum.plugins.dossier_cards",
    "caseforum.plugins.hosted_repository",
    "caseforum.plugins.peer_sources",
    "caseforum.plugins.builtin_bots",
    "caseforum.plugins.inapp_channel",
    "caseforum.plugins.email_channel",
    "caseforum.plugins.webhook_channel",
    "caseforum.plugins.object_storage",
)


@dataclass
class PluginRecord:
    """What the admin page shows about one plugin."""

    name: str
    source: str  # "built-in" or "entry point"
    version: str
    module: ModuleType | None = None
    state: str = "enabled"  # enabled | disabled | failed
    error: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    hook_errors: dict[str, str] = field(default_factory=dict)

    @property
    def hooks(self) -> list[str]:
        if self.module is None:
            return []
        names = {n for n in dir(hookspecs) if not n.startswith("_")}
        return sorted(
            n for n in names
            if callable(getattr(self.module, n, None))
            and hasattr(getattr(self.module, n), f"{PROJECT}_impl")
        )

    @property
    def public_config(self) -> dict[str, Any]:
        """The configuration with secrets masked, for the admin page."""
        return {k: "••••••" if v and SECRET_WORDS.search(k) else v
                for k, v in self.config.items()}

    @property
    def healthy(self) -> bool:
        return self.state != "failed" and not self.hook_errors

    @property
    def directory(self) -> Path | None:
        if self.module is None or not getattr(self.module, "__file__", None):
            return None
        return Path(self.module.__file__).parent  # type: ignore[arg-type]


class PluginHost:
    """Wraps ``pluggy.PluginManager`` with state and typed hook calls."""

    def __init__(self, plugin_settings: dict[str, dict[str, Any]] | None = None, *,
                 data_dir: Path | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.settings = plugin_settings or {}
        self.data_dir = data_dir  # the instance's data folder, for hooks that ask for it
        self.records: dict[str, PluginRecord] = {}
        self._sources: list[GuardedSource] | None = None  # built on first use, see below
        self._source_health: dict[str, SourceHealth] = {}  # by source name, kept across

    # Loading ---------------------------------------------------------------

    def load(
        self,
        *,
        disabled: Iterable[str] = (),
        defaults: Iterable[str] = DEFAULT_PLUGINS,
        use_entry_points: bool = True,
    ) -> None:
        off = set(disabled)
        if use_entry_points:
            for ep in entry_points(group=PROJECT):
                version = ep.dist.version if ep.dist else "?"
                try:
                    module = ep.load()
                except Exception as exc:
                    self._fail(ep.name, "entry point", version, f"import failed: {exc}")
                    continue
                self.add(module, name=ep.name, source="entry point", version=version,
                         enabled=ep.name not in off)
        for dotted in defaults:
            name = dotted.rsplit(".", 1)[-1]
            try:
                module = importlib.import_module(dotted)
            except Exception as exc:
                self._fail(name, "built-in", __version__, f"import failed: {exc}")
                continue
            self.add(module, name=name, source="built-in", version=__version__,
                     enabled=name not in off)
        self._check_pending()

    def _check_pending(self) -> None:
        """``check_pending``, but a plugin implementing an unknown hook is
        marked failed and left out instead of stopping the application."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) if exc.plugin is not None else None
            if name is None or name not in self.records:
                raise
            record = self.records[name]
            self.pm.unregister(name=name)
            self._fail(name, record.source, record.version, f"invalid hook: {exc}")
            self._check_pending()

    def add(
        self,
        module: Any,
        *,
        name: str,
        source: str = "test",
        version: str = __version__,
        enabled: bool = True,
    ) -> PluginRecord:
        """Register a plugin object (module or instance) under ``name``."""
        if name in self.records and self.records[name].state != "failed":
            log.warning("plugin %s is installed twice; keeping the first", name)
            return self.records[name]
        self._sources = None
        record = PluginRecord(name=name, source=source, version=version, module=module)
        try:
            record.config = self._validate_config(name, module)
        except ValueError as exc:
            return self._fail(name, source, version, str(exc), module=module)
        self.records[name] = record
        if enabled:
            try:
                self.pm.register(module, name=name)
            except pluggy.PluginValidationError as exc:
                del self.records[name]
                return self._fail(name, source, version, f"invalid hook: {exc}")
        else:
            record.state = "disabled"
        return record

    def remove(self, name: str) -> None:
        """Unregister and forget a plugin (tests use this to clean up)."""
        self._sources = None
        record = self.records.pop(name, None)
        if record and self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    def _validate_config(self, name: str, module: Any) -> dict[str, Any]:
        model = getattr(module, "Config", None)
        raw = self.settings.get(name, {})
        if model is None or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return dict(raw)
        try:
            return model.model_validate(raw).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"invalid configuration: plugins.{name}.{where}: {first['msg']}"
            ) from None

    def _fail(
        self, name: str, source: str, version: str, error: str, module: Any = None
    ) -> PluginRecord:
        log.error("plugin %s failed: %s", name, error)
        record = PluginRecord(
            name=name, source=source, version=version, module=None, state="failed", error=error
        )
        self.records[name] = record
        return record

    # State -----------------------------------------------------------------

    def is_enabled(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and record.state == "enabled"

    def set_enabled(self, name: str, enabled: bool) -> PluginRecord:
        record = self.records.get(name)
        if record is None:
            raise KeyError(name)
        if record.state == "failed":
            raise errors.Conflict(f"plugin {name} failed to load and cannot be switched on: "
                             f"{record.error}")
        self._sources = None
        if enabled and record.state == "disabled":
            self.pm.register(record.module, name=name)
            record.state = "enabled"
        elif not enabled and record.state == "enabled":
            self.pm.unregister(name=name)
            record.state = "disabled"
        return record

    def config(self, name: str) -> dict[str, Any]:
        record = self.records.get(name)
        return dict(record.config) if record else {}

    # Calling hooks -----------------------------------------------------------

    def _impls(self, hook: str) -> list[Any]:
        # pluggy calls the last registered implementation first; keep that order
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    def _call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        results: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
            if "config" in impl.argnames and "config" not in kwargs:
                args["config"] = self.config(impl.plugin_name)  # the plugin's own settings
            if "data_dir" in impl.argnames and "data_dir" not in kwargs:
                args["data_dir"] = self.data_dir
            try:
                value = impl.function(**args)
            except Exception as exc:
                log.exception("plugin %s failed in %s", impl.plugin_name, hook)
                record = self.records.get(impl.plugin_name)
                if record:
                    record.hook_errors[hook] = f"{type(exc).__name__}: {exc}"
                continue
            if value is not None:
                results.append((impl.plugin_name, value))
        return results

    def _flat(self, hook: str, **kwargs: Any) -> list[Any]:
        return [item for _, items in self._call_each(hook, **kwargs) for item in items]

    def dossier_sources(self) -> list[Any]:
        """The sources that passed the contract check, in plugin order."""
        return [g.source for g in self.guarded_sources() if not g.health.problem]

    def guarded_sources(self) -> list[GuardedSource]:
        """Every source the enabled plugins return, each wrapped in its guard.

        Collected once (again after a plugin is added, removed or switched), and
        checked against the contract then: a source that fails the check is kept
        with its problem, for the admin page, and never called.  Health survives
        the re-collection (it is kept by source name)."""
        if self._sources is None:
            found: list[GuardedSource] = []
            for plugin, items in self._call_each("register_dossier_sources"):
                for source in items or []:
                    found.append(self._guard(plugin, source, {g.name for g in found}))
            self._sources = found
        return self._sources

    def _guard(self, plugin: str, source: Any, taken: set[str]) -> GuardedSource:
        problem = contract_problem(source)
        name = str(getattr(source, "name", "?")) if not problem else \
            str(getattr(source, "name", None) or f"{plugin}?")
        if not problem and name in taken:
            problem = f"{name}: another source already has this name"
        health = self._source_health.get(name)
        if health is None or health.plugin != plugin:
            label = getattr(source, "label", None)
            health = SourceHealth(name=name, plugin=plugin,
                                  label=label if isinstance(label, str) and label else name)
            self._source_health[name] = health
        health.problem = problem
        if problem:
            log.error("plugin %s: dossier source refused: %s", plugin, problem)
        return GuardedSource(source, health)

    def source(self, name: str) -> GuardedSource | None:
        """The guarded source called ``name`` (``None``: none, or switched off)."""
        return next((g for g in self.guarded_sources() if g.name == name), None)

    def source_health(self) -> list[SourceHealth]:
        return [g.health for g in self.guarded_sources()]

    def notification_channels(self) -> list[Any]:
        return self._flat("register_notification_channels")

    def storage_backends(self) -> list[Any]:
        """The storage backend factories, in plugin order (first of a name wins)."""
        return self._flat("register_storage_backends")

    def transfer_routes(self) -> list[Any]:
        return self._flat("register_transfer_routes")

    def bots(self) -> list[Any]:
        return self._flat("register_bots")

    def reference_patterns(self) -> list[Any]:
        return self._flat("register_reference_patterns")

    def document_types(self) -> list[Any]:
        return self._flat("register_document_types")

    def search_items(self, session: Any, events: list[Any] | None) -> list[Any]:
        return self._flat("collect_search_items", session=session, events=events)

    def migrations(self) -> list[Any]:
        return self._flat("register_migrations")

    def models(self) -> list[Any]:
        """Import the enabled plugins' tables (``register_models``): before the whole
        schema is made or compared from the models."""
        return self._flat("register_models")

    def commands(self, *, cli: Any) -> None:
        self._call_each("register_commands", cli=cli)

    def prepare_references(self, *, references: list[Any], viewer: Any) -> None:
        self._call_each("prepare_references", references=references, viewer=viewer)

    def render_reference(self, *, reference: Any, viewer: Any) -> str | None:
        for _, html in self._call_each("render_reference", reference=reference, viewer=viewer):
            return html
        return None

    def routes(self) -> list[tuple[str, Any]]:
        """Routers of every loaded plugin, enabled or not (a dependency hides
        the disabled ones, so switching a plugin back on needs no restart)."""
        found: list[tuple[str, Any]] = []
        for record in self.records.values():
            func = getattr(record.module, "register_routes", None)
            if record.state == "failed" or not callable(func):
                continue
            try:
                found.extend((record.name, router) for router in func() or [])
            except Exception as exc:
                record.hook_errors["register_routes"] = f"{type(exc).__name__}: {exc}"
        return found

    def nav_items(self, *, user: Any) -> list[dict[str, str]]:
        """Menu entries, ordered by their optional ``order`` (default 50)."""
        items = self._flat("extra_nav_items", user=user)
        return sorted(items, key=lambda item: int(item.get("order", 50)))

    def home_panels(self, *, session: Any, viewer: Any) -> list[dict[str, Any]]:
        """The plugins' home page panels; a panel that lacks a title or template is
        left out (a plugin that raises is recorded in its hook errors, as always)."""
        return [p for p in self._flat("home_panels", session=session, viewer=viewer)
                if isinstance(p, dict) and p.get("title") and p.get("template")]

    def listens_to_events(self) -> bool:
        """Whether any plugin implements ``on_event`` (when none does, the consumer
        that calls it passes events over without a transaction each)."""
        return bool(self._impls("on_event"))

    def on_event(self, *, event: Any) -> None:
        for impl in self._impls("on_event"):
            impl.function(**{k: v for k, v in {"event": event}.items() if k in impl.argnames})

    def startup(self, *, app: Any) -> None:
        self._call_each("startup", app=app)

    def shutdown(self, *, app: Any) -> None:
        self._call_each("shutdown", app=app)

    def template_dirs(self) -> list[Path]:
        dirs = []
        for record in self.records.values():
            d = record.directory
            if record.state != "failed" and d and (d / "templates").is_dir():
                dirs.append(d / "templates")
        return dirs

    def static_dirs(self) -> dict[str, Path]:
        found = {}
        for record in self.records.values():
            d = record.directory
            if record.state != "failed" and d and (d / "static").is_dir():
                found[record.name] = d / "static"
        return found
