"""A small named registry shared by learners, datasets and backbones."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from memcomp.errors import InputError, UnknownNameError
from memcomp.plugins import LOADING_SOURCE, discover, note_registered

F = TypeVar("F", bound=Callable[..., Any])


def _to_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) else value


# A path option written as a string in YAML; suites are validated strictly, which would otherwise
# reject a string where a Path is expected.
PathOption = Annotated[Path, BeforeValidator(_to_path)]


# Upper bound of any step count (inner, fine-tuning, solver steps of one task), stated once for
# the config models and every component's parameters.
MAX_STEPS = 100_000


class Params(BaseModel):
    """Base class of every registered component's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# A parameter added after suites were written: at its default it is left out of the cell id
# (``memcomp.config.cells.identity``), so every cell written before it keeps its id and resumes.
ADDED_LATER = "added_later"


def added_later(default: Any, **kw: Any) -> Any:
    """``Field(default, **kw)`` marked :data:`ADDED_LATER`."""
    return Field(default, json_schema_extra={ADDED_LATER: True}, **kw)


@dataclass(frozen=True)
class Entry(Generic[F]):
    """One registered component: its name, a one-line summary, parameter model and factory.

    ``target`` is either the factory itself or ``"module:attribute"``, imported on first use of
    :attr:`factory`: the name, summary and parameters of a component are then known (validation,
    listing, JSON Schema) without importing its implementation (and torch).
    """

    name: str
    summary: str
    params: type[Params]
    target: F | str
    source: str = "built-in"

    @property
    def factory(self) -> F:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.target


class Registry(Generic[F]):
    """Maps names to entries; lookups of unknown names suggest the closest valid one.

    ``group`` names the entry-point group (e.g. ``memcomp.learners``) whose plugins are imported
    on the first lookup, listing or iteration (:func:`memcomp.plugins.discover`), so every
    command, child process and library call sees installed plugins.
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry[F]] = {}
        self._discovered = group is None

    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True  # before importing: a plugin registering here re-enters
            for name, where in discover(self.group):  # type: ignore[arg-type]
                if name not in self._entries:
                    raise InputError(
                        f"{where}: importing it registered no {self.kind} named {name!r} "
                        "(name the entry point after the component its module registers)"
                    )

    def register(
        self, name: str, summary: str, params: type[Params], source: str | None = None
    ) -> Callable[[F], F]:
        """Decorator registering ``factory`` under ``name``."""

        def deco(factory: F) -> F:
            self.add(Entry(name, summary, params, factory, source or _source_of(factory)))
            return factory

        return deco

    def register_lazy(
        self, name: str, summary: str, params: type[Params], target: str, source: str | None = None
    ) -> None:
        """Register ``"module:attribute"`` as the factory of ``name``, imported on first use."""
        self.add(Entry(name, summary, params, target, source or _source_of(target)))

    def add(self, entry: Entry[F]) -> None:
        """Add ``entry``; registering an existing name is an error."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} registered twice")
        self._entries[entry.name] = entry
        target = entry.target
        module = target.partition(":")[0] if isinstance(target, str) else target.__module__
        note_registered(self.kind, entry.name, entry.source, str(module))

    def get(self, name: str) -> Entry[F]:
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[F]]:
        return iter(self._entries[n] for n in self.names())


def _source_of(factory: Any) -> str:
    """Where an entry registered now comes from: the plugin being imported
    (:data:`LOADING_SOURCE`), ``built-in`` for memcomp's own modules, else ``module NAME``."""
    loading = LOADING_SOURCE.get()
    if loading is not None:
        return loading
    module = factory.partition(":")[0] if isinstance(factory, str) else factory.__module__
    top = str(module).split(".")[0]
    return "built-in" if top == "memcomp" else f"module {top}"


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """``unknown learner 'mamll'; did you mean 'maml'? valid: ...``."""
    msg = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return msg + f" (valid: {', '.join(valid)})"
