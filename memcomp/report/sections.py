"""Report sections: one registry that ``report.md``, the CSV/TeX tables, the terminal and
``report.html`` all render from.

A section is a function of the :class:`ReportInput` (the results folder, read and normalised
once) returning a :class:`SectionOutput`: tables, figures and notes. The built-in sections
(:mod:`memcomp.report.builtin_sections`) come first in :data:`BUILTIN_ORDER`; sections added by
plugins follow by name. A plugin registers one with :func:`report_section` (entry-point group
``memcomp.report_sections``, ``--plugin`` or ``$MEMCOMP_PLUGINS``; docs/extending.md)::

    from memcomp.report.sections import SectionOutput, report_section

    @report_section("seeds", "Seeds per learner")
    def seeds(inp):
        ...
        return SectionOutput(tables=[Table("seeds", "Seeds per learner", data, tidy)])

A plugin section that raises is left out with a note naming it; a built-in one that raises is a
bug and propagates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.registry import Entry, Params, Registry
from memcomp.report.normalize import Table, normalize_runs
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW
from memcomp.results.store import CorruptResultsError, ResultsDir

__all__ = [
    "BUILTIN_ORDER", "REPORT_SECTIONS", "Figure", "ReportInput", "Section", "SectionOutput",
    "build_sections", "report_section", "sections",
]  # fmt: skip


@dataclass
class ReportInput:
    """Everything a section reads, read once: ``raw_runs`` as on disk (either schema),
    ``runs`` normalised (:func:`memcomp.report.normalize.normalize_runs`), curves, episodes,
    the manifest ({} when unreadable: ``notes`` says so) and the time-to-accuracy knobs."""

    results_dir: Path
    manifest: dict[str, Any]
    raw_runs: pd.DataFrame
    runs: pd.DataFrame
    curves: pd.DataFrame
    episodes: pd.DataFrame
    fraction: float = FRACTION
    window: int = WINDOW
    patience: int = PATIENCE
    notes: list[str] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        results_dir: Path,
        fraction: float = FRACTION,
        window: int = WINDOW,
        patience: int = PATIENCE,
    ) -> ReportInput:
        """Read ``results_dir`` (a corrupt table raises :class:`CorruptResultsError`)."""
        rd = ResultsDir(Path(results_dir))
        notes = []
        try:
            manifest = rd.manifest()
        except CorruptResultsError as e:
            manifest = {}
            notes.append(f"{e}: header details skipped, tables come from runs.csv")
        raw = rd.runs(manifest)
        runs = normalize_runs(raw) if len(raw) else raw
        return cls(
            Path(results_dir), manifest, raw, runs, rd.curves(), rd.episodes(),
            fraction, window, patience, notes,
        )  # fmt: skip

    @property
    def has_curves(self) -> bool:
        cols = {"cell_id", "iteration", "train_seconds", "val_acc"}
        return cols <= set(self.curves.columns) and not self.curves.empty


@dataclass
class Figure:
    """A matplotlib figure of a section, saved as ``<stem>.png`` and ``<stem>.svg``; ``data``:
    the tidy numbers it drew (report.html's interactive charts use them); ``block_id``: its
    id in report.html (default ``plot-<stem>``)."""

    stem: str
    caption: str
    fig: Any
    data: pd.DataFrame | None = None
    block_id: str = ""

    def __post_init__(self) -> None:
        self.block_id = self.block_id or f"plot-{self.stem}"


@dataclass
class SectionOutput:
    """What a section built: tables (md/tex/csv files, the terminal, report.html), figures and
    notes (shown with the report's notes)."""

    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(len(t.data) for t in self.tables) and not self.figures


Build = Callable[[ReportInput], SectionOutput]


@dataclass(frozen=True)
class Section:
    """A registered section: ``name`` is its id in report.html; ``placeholder``: the HTML shown
    when it built nothing (None: the section is left out of the page)."""

    name: str
    title: str
    build: Build
    source: str = "built-in"
    placeholder: str | None = None


REPORT_SECTIONS: Registry[Build] = Registry("report section", "memcomp.report_sections")
_PLACEHOLDERS: dict[str, str] = {}
# the built-in sections in page order (name, title, HTML placeholder); plugin sections follow
_BUILTINS = (
    ("accuracy", "Accuracy", ""),
    ("memory", "Memory vs K", '<p class="note">no memory data</p>'),
    ("precision", "Peak memory and time per precision", None),
    ("time", "Accuracy vs wall-clock and time to accuracy", ""),
    ("phases", "Per-phase memory", None),
    ("paper", "Paper reference", None),
)
BUILTIN_ORDER = tuple(name for name, _, _ in _BUILTINS)
for _name, _title, _placeholder in _BUILTINS:
    REPORT_SECTIONS.register_lazy(
        _name, _title, Params, f"memcomp.report.builtin_sections:{_name}_section"
    )
    if _placeholder is not None:
        _PLACEHOLDERS[_name] = _placeholder


def report_section(
    name: str, title: str, placeholder: str | None = None
) -> Callable[[Build], Build]:
    """Decorator registering ``build`` as the report section ``name`` titled ``title``;
    ``placeholder``: the HTML report.html shows when it builds nothing (None: left out)."""

    def deco(build: Build) -> Build:
        REPORT_SECTIONS.register(name, title, Params)(build)
        if placeholder is not None:
            _PLACEHOLDERS[name] = placeholder
        return build

    return deco


def sections() -> list[Section]:
    """Every registered section in report order (importing installed plugins)."""
    entries: dict[str, Entry[Build]] = {e.name: e for e in REPORT_SECTIONS}
    names = [n for n in BUILTIN_ORDER if n in entries]
    names += sorted(n for n in entries if n not in BUILTIN_ORDER)
    return [
        Section(n, entries[n].summary, entries[n].factory, entries[n].source, _PLACEHOLDERS.get(n))
        for n in names
    ]


def build_sections(inp: ReportInput) -> list[tuple[Section, SectionOutput]]:
    """Each section's output, in order. A plugin section that raises becomes a note."""
    out = []
    for sec in sections():
        if sec.source == "built-in":
            built = sec.build(inp)
        else:
            try:
                built = sec.build(inp)
                if not isinstance(built, SectionOutput):
                    raise TypeError(f"returned {type(built).__name__}, not a SectionOutput")
            except Exception as e:  # noqa: BLE001 - a plugin's bug must not lose the report
                why = " ".join(f"{type(e).__name__}: {e}".split())
                built = SectionOutput(
                    notes=[
                        f"report section {sec.name!r} ({sec.source}) failed and is left out: {why}"
                    ]
                )
        out.append((sec, built))
    return out
