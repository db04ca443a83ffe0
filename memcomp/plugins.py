"""Plugins: modules that register extra learners, datasets or backbones.

Three ways in, one mechanism (docs/extending.md):

- installed distributions declaring entry points in the groups ``memcomp.learners``,
  ``memcomp.datasets`` or ``memcomp.backbones`` (``mine = "mine"``: the value names the module
  that registers the component): imported on the first use of the registry of that kind, in
  every process (commands, cell child processes, library calls);
- ``--plugin MODULE`` (any command, repeatable) and a suite's ``plugins: [MODULE, ...]``;
- ``$MEMCOMP_PLUGINS`` (comma-separated modules).

Every module imported by the last two ways is remembered (:func:`loaded`) and imported again in
each cell child process. A module that fails to import is bad input
(:class:`~memcomp.errors.InputError`, exit 2): one line naming the module and the import error.
Entries registered while a plugin is imported record where they come from
(:attr:`memcomp.registry.Entry.source`: the distribution's name, or ``module NAME``).
"""

from __future__ import annotations

import importlib
import os
from contextvars import ContextVar
from importlib import metadata

from memcomp.errors import InputError

ENV = "MEMCOMP_PLUGINS"
GROUPS = ("memcomp.learners", "memcomp.datasets", "memcomp.backbones")
_loaded: list[str] = []
# Where entries registered now come from (set while a plugin is imported: its distribution, or
# "module NAME" for a module no installed distribution owns); read by memcomp.registry.
LOADING_SOURCE: ContextVar[str | None] = ContextVar("memcomp_loading_source", default=None)


class PluginError(InputError):
    """A plugin module could not be imported (exit 2)."""


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
            _import(module, distribution_of(module) or f"module {module}", origin)
            _loaded.append(module)
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
