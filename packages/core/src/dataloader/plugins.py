"""Plugin discovery and the registries built from it.

The core is built from its own plugins through the same hooks third parties use: the built-in
transforms and state backend are registered by ``dataloader.builtins`` exactly as a connector
wheel registers through its entry point.

- Entry points in the group ``dataloader`` are loaded one by one. One that fails to import (or
  implements a misspelt hook) is recorded as a :class:`PluginFailure` naming its distribution, and
  a warning is logged; the rest of the CLI keeps working. Only a recipe that needs a name that
  plugin would have provided fails, with that plugin's error.
- ``DATALOADER_DISABLE_PLUGINS=a,b`` skips entry points by name.
- ``DATALOADER_TRACE_HOOKS=1`` writes every hook call to stderr, its arguments shown with every
  secret masked (:func:`dataloader.secrets.mask`): a traced ``Recipe`` holds its passwords.
- Two plugins registering the same name in one kind is a clash; using that name is an error that
  names both distributions.

Tests should not depend on what happens to be installed: build a :class:`PluginHost` with
``load_entrypoints=False``, register plugins explicitly, and install it with :func:`use_host`
(``dataloader.testing.plugin_host`` does this as a fixture).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from dataloader import hookspecs
from dataloader.errors import PluginError

log = logging.getLogger("dataloader.plugins")

ENTRY_POINT_GROUP = "dataloader"
KINDS: dict[str, str] = {
    # kind -> the hook that registers it
    "connector": "register_connectors",
    "transform": "register_transforms",
    "format": "register_formats",
    "state_backend": "register_state_backends",
    "quality_check": "register_quality_checks",
    "executor": "register_executors",
}
KIND_LABELS = {
    "connector": "connector",
    "transform": "transform",
    "format": "format",
    "state_backend": "state backend",
    "quality_check": "quality check",
    "executor": "executor",
}


class PluginClass:
    """A plugin class named by its import path, imported when it is first built.

    The one way connectors register (``register("postgres", PluginClass(
    "dataloader_postgres.connector:PostgresConnector", capabilities=CAPABILITIES),
    config=PostgresConfig)``): what the core reads before a run, the ``capabilities`` and any other
    class attribute given as a keyword (a format's ``extensions``), is data in the plugin's light
    modules, so ``validate``, ``list-connectors`` and every recipe check import no driver. Building
    one imports the class, which must carry the same capabilities: a class that says something else
    than its registration is a :class:`PluginError`, not a silent difference between what
    ``validate`` promised and what the run does.

    :param path: ``"package.module:ClassName"``.
    :param capabilities: the class's ``capabilities`` (a :class:`dataloader.connector.Capabilities`).
    :param attributes: other class attributes the core may read before building (``extensions``).
    """

    def __init__(self, path: str, *, capabilities: Any = None, **attributes: Any) -> None:
        module, _, name = path.partition(":")
        if not module or not name:
            raise PluginError(f"plugin class path '{path}' must read 'package.module:ClassName'", path=path)
        self.path = path
        self.capabilities = capabilities
        self.__dict__.update(attributes)
        self._class: type | None = None

    def load(self) -> type:
        """The class itself (imported on first use), checked against what was registered."""
        if self._class is None:
            import importlib

            module, _, name = self.path.partition(":")
            cls = getattr(importlib.import_module(module), name, None)
            if not isinstance(cls, type):
                raise PluginError(f"plugin class '{self.path}' does not exist (no class {name} in {module})", path=self.path)
            declared = getattr(cls, "capabilities", None)
            if self.capabilities is not None and declared != self.capabilities:
                raise PluginError(
                    f"plugin class '{self.path}' declares other capabilities than it was registered with; "
                    "set the class's capabilities to the registered ones (one Capabilities object, shared)",
                    path=self.path,
                )
            self._class = cls
        return self._class

    def __call__(self, config: Any) -> Any:
        return self.load()(config)

    def __repr__(self) -> str:
        return f"PluginClass({self.path!r})"


@dataclass(frozen=True)
class Registration:
    """One name registered by one plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: type | None
    plugin: str
    distribution: str
    version: str

    def build(self, config: Any) -> Any:
        return self.factory(config)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered."""

    plugin: str
    distribution: str
    version: str
    error: str

    def describe(self) -> str:
        return f"plugin '{self.plugin}' from {self.distribution} {self.version} failed to load: {self.error}"


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    entries: dict[str, dict[str, Registration]] = field(default_factory=lambda: {k: {} for k in KINDS})
    clashes: dict[tuple[str, str], list[Registration]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def all(self, kind: str) -> list[Registration]:
        return [self.entries[kind][name] for name in self.names(kind)]

    def get(self, kind: str, name: str) -> Registration:
        """The registration of ``name``, or a :class:`PluginError` saying what is installed."""
        clash = self.clashes.get((kind, name))
        if clash:
            owners = " and ".join(f"{r.distribution} (plugin '{r.plugin}')" for r in clash)
            raise PluginError(
                f"{KIND_LABELS[kind]} '{name}' is registered by both {owners}; uninstall one of them "
                f"or disable one with DATALOADER_DISABLE_PLUGINS",
                kind=kind,
                name=name,
                distributions=[r.distribution for r in clash],
            )
        try:
            return self.entries[kind][name]
        except KeyError:
            pass
        raise PluginError(self.unknown_message(kind, name), kind=kind, name=name, installed=self.names(kind))

    def unknown_message(self, kind: str, name: str) -> str:
        label = KIND_LABELS[kind]
        installed = self.names(kind)
        message = f"unknown {label} '{name}'"
        close = difflib.get_close_matches(name, installed, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean '{close[0]}'?"
        message += f" installed: {', '.join(installed) if installed else 'none'}"
        broken = [f for f in self.failures if f.plugin == name or name in f.plugin]
        if broken:
            message += "; " + "; ".join(f.describe() for f in broken)
        elif kind == "connector" and not close:
            from dataloader.install import connector_hint

            message += f" ({connector_hint(name)})"
        return message


class PluginHost:
    """A pluggy plugin manager plus the registry it produces."""

    def __init__(self, *, load_entrypoints: bool = True, builtins: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._origins: dict[str, tuple[str, str]] = {}
        self.failures: list[PluginFailure] = []
        self._registry: Registry | None = None
        if os.environ.get("DATALOADER_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(_write_trace)
            self.pm.enable_tracing()
        if builtins:
            from dataloader import builtins as builtin_plugin

            self.register(builtin_plugin, name="dataloader-builtins", distribution="dataloader")
        if load_entrypoints:
            self._load_entrypoints()

    # registration ----------------------------------------------------------------------
    def register(
        self,
        plugin: Any,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register a plugin module or object explicitly (tests, embedding applications)."""
        plugin_name = self.pm.register(plugin, name=name)
        if plugin_name is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered", plugin=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            raise PluginError(
                f"plugin '{plugin_name}' implements a hook dataloader does not define: {exc}", plugin=plugin_name
            ) from exc
        dist = distribution or _distribution_of(plugin)
        self._origins[plugin_name] = (dist, version or _version_of(dist))
        self._registry = None
        return plugin_name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._origins.pop(name, None)
        self._registry = None

    def _load_entrypoints(self) -> None:
        disabled = {n.strip() for n in os.environ.get("DATALOADER_DISABLE_PLUGINS", "").split(",") if n.strip()}
        for ep in _entry_points():
            if ep.name in disabled or self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            version = ep.dist.version if ep.dist is not None else "?"
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name, distribution=dist, version=version)
            except Exception as exc:  # a broken third-party plugin must not take the CLI down
                self._fail(ep.name, dist, version, exc)

    def _fail(self, plugin: str, dist: str, version: str, exc: BaseException) -> None:
        failure = PluginFailure(plugin, dist, version, f"{type(exc).__name__}: {exc}")
        self.failures.append(failure)
        log.warning("%s", failure.describe())

    # the registry ----------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry(failures=list(self.failures))
        for kind, hook_name in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                dist, version = self._origins.get(impl.plugin_name, ("unknown distribution", "?"))
                register = _Registrar(registry, kind, impl.plugin_name, dist, version)
                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:  # same policy as an import failure
                    failure = PluginFailure(impl.plugin_name, dist, version, f"{hook_name} raised {exc!r}")
                    registry.failures.append(failure)
                    log.warning("%s", failure.describe())
        return registry


class _Registrar:
    """The ``register`` callable handed to one plugin's ``register_*`` hook."""

    def __init__(self, registry: Registry, kind: str, plugin: str, dist: str, version: str) -> None:
        self.registry, self.kind, self.plugin, self.dist, self.version = registry, kind, plugin, dist, version

    def __call__(self, name: str, factory: Callable[..., Any], *, config: type | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{self.plugin}' registered a {self.kind} without a name", plugin=self.plugin)
        if not callable(factory):
            raise PluginError(
                f"plugin '{self.plugin}' registered {self.kind} '{name}' with a factory that is not callable",
                plugin=self.plugin,
            )
        entry = Registration(self.kind, name, factory, config, self.plugin, self.dist, self.version)
        existing = self.registry.entries[self.kind].get(name)
        if existing is not None and existing.plugin != self.plugin:
            self.registry.clashes.setdefault((self.kind, name), [existing]).append(entry)
            log.warning(
                "%s '%s' is registered by both %s and %s",
                KIND_LABELS[self.kind],
                name,
                existing.distribution,
                self.dist,
            )
            return
        self.registry.entries[self.kind][name] = entry


def _write_trace(message: str) -> None:
    from dataloader import secrets

    sys.stderr.write(secrets.mask(f"[hook] {message}"))


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _distribution_of(plugin: Any) -> str:
    module = getattr(plugin, "__name__", None) or type(plugin).__module__
    top = module.split(".")[0]
    dists = metadata.packages_distributions().get(top)
    return dists[0] if dists else module


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# -- the process-wide host ----------------------------------------------------------------
_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def get_registry() -> Registry:
    return get_host().registry


#: The registry a recipe is being validated or run against, when that is not the process-wide one.
_active_registry: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("dataloader_registry", default=None)


def active_registry() -> Registry:
    """The registry plugins should look other plugins up in: the one being validated against, else the process-wide one.

    Plugin config models run inside pydantic validation, where no host can be passed; the core
    sets the registry it validates with for the duration (:func:`using_registry`).
    """
    return _active_registry.get() or get_registry()


@contextlib.contextmanager
def using_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` what :func:`active_registry` returns in this context (thread / task)."""
    token = _active_registry.set(registry)
    try:
        yield registry
    finally:
        _active_registry.reset(token)


@contextlib.contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make ``host`` the process-wide host for the duration of the block."""
    global _host
    previous, _host = _host, host
    try:
        yield host
    finally:
        _host = previous


def reset() -> None:
    """Forget the process-wide host; the next use loads plugins again."""
    global _host
    _host = None


__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "PluginClass",
    "PluginFailure",
    "PluginHost",
    "Registration",
    "Registry",
    "get_host",
    "active_registry",
    "get_registry",
    "using_registry",
    "reset",
    "use_host",
]
