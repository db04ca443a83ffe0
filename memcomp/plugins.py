"""Plugins: modules that register extra learners, datasets, backbones, executors or report
sections.

Three ways in, one mechanism (docs/extending.md):

- installed distributions declaring entry points in the groups of :data:`GROUPS`
  (``memcomp.learners``, ``memcomp.datasets``, ...; ``mine = "mine"``: the value names the module
  that registers the component): imported on the first use of the registry of that kind, in
  every process (commands, cell child processes, library calls);
- ``--plugin MODULE`` (any command, repeatable) and a suite's ``plugins: [MODULE, ...]``;
- ``$MEMCOMP_PLUGINS`` (comma-separated modules).

Every module imported by the last two ways is remembered (:func:`loaded`) and imported again in
each cell child process. A module that fails to import is bad input
(:class:`~memcomp.errors.InputError`, exit 2): one line naming the module and the import error.
A module that imports but registers nothing (``--plugin os``, a typo'd submodule) gets a one-line
warning on stderr (not in cell child processes, which import the same modules again).
Entries registered while a plugin is imported record where they come from
(:attr:`memcomp.registry.Entry.source`: the distribution's name, or ``module NAME``).
"""

from __future__ import annotations

import importlib
import os
import sys
from contextvars import ContextVar
from importlib import metadata

from memcomp.errors import InputError

ENV = "MEMCOMP_PLUGINS"
GROUPS = (
    "memcomp.learners", "memcomp.datasets", "memcomp.backbones", "memcomp.executors",
    "memcomp.report_sections",
)  # fmt: skip
_loaded: list[str] = []
# (kind, name, source, module of the factory) of every registry entry added in this process,
# appended by memcomp.registry (note_registered): tells whether a plugin registered anything.
_registered: list[tuple[str, str, str, str]] = []
# Where entries registered now come from (set while a plugin is imported: its distribution, or
# "module NAME" for a module no installed distribution owns); read by memcomp.registry.
LOADING_SOURCE: ContextVar[str | None] = ContextVar("memcomp_loading_source", default=None)


class PluginError(InputError):
    """A plugin module could not be imported (exit 2)."""


def note_registered(kind: str, name: str, source: str, module: str) -> None:
    """Record that a registry added ``name`` (called by :meth:`memcomp.registry.Registry.add`)."""
    _registered.append((kind, name, source, module))


def _registered_by(module: str, source: str) -> bool:
    """Whether any entry so far came from ``module`` (by its source, ``source`` or ``module
    NAME``, or by its factory's module)."""
    return any(
        src in (source, f"module {module}") or mod == module or mod.startswith(module + ".")
        for _, _, src, mod in _registered
    )


def _warn_if_empty(module: str, origin: str, before: int, source: str) -> None:
    if len(_registered) > before or _registered_by(module, source):
        return
    if os.environ.get("MEMCOMP_PARENT_PID"):  # a cell child: the parent has warned already
        return
    sys.stderr.write(
        f"warning: {origin}: plugin {module!r} imported but registered no learner, dataset, "
        "backbone, executor or report section; name the module that calls e.g. "
        "memcomp.LEARNERS.register (docs/extending.md)\n"
    )


def env_modules() -> list[str]:
    """Modules named by ``$MEMCOMP_PLUGINS`` (comma-separated)."""
    return [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]


def loaded() -> list[str]:
    """Plugin modules imported so far by name (``--plugin``, suites, ``$MEMCOMP_PLUGINS``)."""
    return list(_loaded)


def _import(module: str, source: str, origin: str) -> None:
    token = LOADING_SOURCE.set(source)
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of a plugin is reported as bad input
        detail = " ".join(f"{type(e).__name__}: {e}".split())
        raise PluginError(f"{origin}: cannot import plugin {module!r}: {detail}") from None
    finally:
        LOADING_SOURCE.reset(token)


def distribution_of(module: str) -> str | None:
    """The installed distribution owning ``module``'s top-level package, if any."""
    names = metadata.packages_distributions().get(module.split(".")[0])
    return names[0] if names else None


def load(modules: list[str] | tuple[str, ...], origin: str = "--plugin") -> list[str]:
    """Import ``modules`` (``origin`` names where they were asked for, for error messages)."""
    for module in modules:
        if module not in _loaded:
            source = distribution_of(module) or f"module {module}"
            before = len(_registered)
            _import(module, source, origin)
            _loaded.append(module)
            _warn_if_empty(module, origin, before, source)
    return list(modules)


def load_env() -> list[str]:
    """Import the modules of ``$MEMCOMP_PLUGINS``."""
    return load(env_modules(), ENV)


def discover(group: str) -> list[tuple[str, str]]:
    """Import the modules of every installed entry point of ``group``; returns each entry
    point's ``(name, where)`` (the registry checks that the name got registered)."""
    found = []
    for ep in metadata.entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else ep.module
        where = f"entry point {ep.name!r} of {dist} ({group})"
        _import(ep.module, dist, where)
        found.append((ep.name, where))
    return found
