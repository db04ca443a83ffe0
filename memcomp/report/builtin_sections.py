"""The built-in report sections (registered by :mod:`memcomp.report.sections`, imported on first
use): accuracy, memory versus K, precision, time, per-phase memory and the paper reference. Each
takes the :class:`~memcomp.report.sections.ReportInput` and returns its tables, figures and notes.
"""

from __future__ import annotations

from dataclasses import replace

from memcomp.report.phase_memory import phase_memory_table, plot_phase_memory
from memcomp.report.precision_tables import precision_table
from memcomp.report.sections import Figure, ReportInput, SectionOutput
from memcomp.report.tables import (
    accuracy_table,
    memory_table,
    paper_table,
    reduction_table,
    time_table,
    tta_table,
)

MEMORY_CAPTION = "peak memory vs inner steps K"
TIME_CAPTION = "validation accuracy vs training time"


def accuracy_section(inp: ReportInput) -> SectionOutput:
    return SectionOutput([accuracy_table(inp.runs, inp.episodes)])


def memory_section(inp: ReportInput) -> SectionOutput:
    from memcomp.report.plots import plot_memory

    mem = memory_table(inp.runs)
    if mem.data.empty:
        note = "no peak-memory data (peak_mem_mb per inner_steps K): memory table and plot skipped."
        return SectionOutput(notes=[note])
    out = SectionOutput([replace(mem, filters=("setting", "source"))])
    red = reduction_table(inp.runs)
    if red.data.empty:
        out.notes.append("no maml/anil memory at matching K: reduction table skipped.")
    else:
        out.tables.append(red)
    fig, data = plot_memory(inp.runs)
    out.figures.insert(0, Figure("memory", MEMORY_CAPTION, fig, data))
    return out


def precision_section(inp: ReportInput) -> SectionOutput:
    table = precision_table(inp.raw_runs)  # cells differing only in precision, if any
    return SectionOutput([table] if not table.data.empty else [])


def time_section(inp: ReportInput) -> SectionOutput:
    from memcomp.report.plots import plot_val_vs_time

    out = SectionOutput()
    if not inp.has_curves:
        out.notes.append("no validation curves: time-to-accuracy and accuracy-vs-time skipped.")
    else:
        tta = tta_table(inp.runs, inp.curves, inp.fraction, inp.window, inp.patience)
        out.tables.append(tta)
        fig, data = plot_val_vs_time(inp.runs, inp.curves, inp.fraction)
        out.figures.append(Figure("val_vs_time", TIME_CAPTION, fig, data))
    out.tables.append(replace(time_table(inp.runs), filters=("setting",)))
    return out


def phases_section(inp: ReportInput) -> SectionOutput:
    phases = phase_memory_table(inp.runs)
    if phases.data.empty:
        return SectionOutput()
    fig, data = plot_phase_memory(phases)
    figure = Figure("phase_memory", "peak memory per phase", fig, data, "plot-phase-memory")
    return SectionOutput([replace(phases, filters=("setting",))], [figure])


def paper_section(inp: ReportInput) -> SectionOutput:
    ref = paper_table(inp.runs)
    return SectionOutput([ref] if not ref.data.empty else [])
