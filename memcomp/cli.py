"""The ``memcomp`` command line (Typer)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memcomp.errors import InputError, MemcompError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="memcomp",
    help=(
        "Benchmark memory, time and accuracy of optimization-based meta-learners.\n\n"
        "Typical use:\n\n"
        "  memcomp run suites/quickstart.yaml\n\n"
        "  memcomp report results/quickstart/<timestamp>"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Inspect and prepare the real benchmark datasets.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


def handle_errors(fn: F) -> F:
    """Turn memcomp's own errors into one clean message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemcompError as e:
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


def short_label(kind: str, comp: Any) -> str:
    """``name(k=v, ...)`` listing only parameters that differ from the registered defaults."""
    from memcomp.backbones import BACKBONES
    from memcomp.data import DATASETS
    from memcomp.learners import LEARNERS

    reg = {"learner": LEARNERS, "dataset": DATASETS, "backbone": BACKBONES}[kind]
    try:
        defaults = reg.get(comp.name).params().model_dump()
    except Exception:  # noqa: BLE001 - a component without defaults shows everything
        defaults = {}
    diff = {k: v for k, v in comp.params.items() if defaults.get(k, object()) != v}
    inner = ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))
    return f"{comp.name}({inner})" if inner else comp.name


def _cells_table(cells: list[Any], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("cell id")
    table.add_column("learner", overflow="fold")
    table.add_column("dataset / setting")
    table.add_column("backbone")
    table.add_column("seed", justify="right")
    for i, c in enumerate(cells, 1):
        s = c.setting
        table.add_row(
            str(i),
            c.id,
            short_label("learner", c.learner),
            f"{short_label('dataset', c.dataset)} {s.ways}w{s.shots}s q{s.queries}",
            short_label("backbone", c.backbone),
            str(c.seed),
        )
    return table


@app.command()
@handle_errors
def validate(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    check_data: bool = typer.Option(
        False, "--check-data", help="Also check datasets, backbones and the device (as `run` does)."
    ),
) -> None:
    """Check a suite and print the cells it expands to, without running anything.

    Examples:

      memcomp validate suites/quickstart.yaml

      memcomp validate suites/paper-accuracy.yaml --check-data
    """
    from memcomp.config import expand, load_suite

    s = load_suite(suite)
    cells = expand(s)
    if check_data:
        from memcomp.preflight import preflight

        preflight(s, cells, check_data=True)
    console.print(_cells_table(cells, f"suite {s.name}: {len(cells)} cells"))
    console.print(f"[green]ok[/]: {suite} is valid ({len(cells)} cells)")


@app.command()
@handle_errors
def run(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    out: Path = typer.Option(Path("results"), "--out", help="Results root folder."),
    device: str = typer.Option(
        None, "--device", help="auto | cpu | cuda (default: the suite's `device`)."
    ),
    only: str = typer.Option(
        None, "--only", help="Run only cells whose id, learner or label match this glob."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check everything, list the cells to run, write nothing."
    ),
    resume: Path = typer.Option(
        None, "--resume", help="Continue this results folder: skip its ok cells, run the rest."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Cells run at once (process isolation)."),
    memory_limit: float = typer.Option(
        None, "--memory-limit", help="Cap each cell's CUDA memory at this many MB."
    ),
    isolation: str = typer.Option(
        "process", "--isolation", help="process (each cell in its own process) | inline."
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        help="Torch CPU threads per cell (default: torch's, or the cores shared among --jobs).",
    ),
) -> None:
    """Expand a suite into cells, meta-train each, and write results.

    Results go to OUT/<suite>/<timestamp>/ (runs.csv, curves.csv, episodes.csv, manifest.json).

    Examples:

      memcomp run suites/quickstart.yaml

      memcomp run suites/paper-memory.yaml --device cuda --only 'mrml*'

      memcomp run suites/quickstart.yaml --dry-run

      memcomp run suites/quickstart.yaml --resume results/quickstart/20261127-101500

      memcomp run suites/paper-memory.yaml --jobs 2 --memory-limit 8000
    """
    from memcomp.cli_run import run_suite_command

    code = run_suite_command(
        suite, out, device, only, dry_run, console,
        resume=resume, jobs=jobs, memory_limit=memory_limit, isolation=isolation,
        threads=threads,
    )  # fmt: skip
    raise typer.Exit(code)


@app.command()
@handle_errors
def report(
    results: Path = typer.Argument(..., help="A results folder written by `memcomp run`."),
    out: Path = typer.Option(None, "--out", help="Report folder (default RESULTS/report)."),
    fmt: str = typer.Option("md,csv", "--format", help="Table formats: any of md,tex,csv."),
    html: bool = typer.Option(
        True, "--html/--no-html", help="Also write one self-contained report.html (default on)."
    ),
) -> None:
    """Tables and plots mirroring the paper: accuracy, memory vs K, accuracy vs time, TTA.

    RESULTS may be a run folder or a suite folder (its newest run is used). With --html (the
    default) it also writes report.html; a suite folder, or a folder of suite folders
    (results/), also gets index.html linking every run's page.

    Examples:

      memcomp report results/quickstart

      memcomp report results/quickstart/20261127-101500 --format md,tex,csv

      memcomp report results/
    """
    from memcomp.report import build_report, print_report

    formats = tuple(f.strip() for f in fmt.split(",") if f.strip())
    bad = [f for f in formats if f not in ("md", "tex", "csv")]
    if bad:
        raise InputError(f"--format: unknown format {bad[0]!r}; use a comma list of md, tex, csv")
    # --- HTML report and results index (issue 14) ---
    from memcomp.report.html import build_html_page, write_html_report
    from memcomp.report.index import find_runs, write_index

    below = [] if (results / "runs.csv").exists() else find_runs(results)
    if below and html and not any(p.parent == results for p in below):
        index = write_index(results, out, lambda run: build_html_page(run, formats))
        console.print(escape(f"{len(below)} runs; index.html: {index}"), soft_wrap=True)
        return
    results = resolve_results_dir(results)
    rep = build_report(results, out, formats)
    print_report(rep, console)
    if html:
        page = write_html_report(results, rep, out if out is not None else results / "report")
        if below:
            index = write_index(results.parent, None, lambda run: build_html_page(run, formats))
            console.print(escape(f"index.html: {index}"), soft_wrap=True)
        console.print(escape(f"report.html: {page}"), soft_wrap=True)


def resolve_results_dir(path: Path) -> Path:
    """A results folder, or a suite folder whose newest run is taken."""
    if (path / "runs.csv").exists():
        return path
    runs = sorted(p.parent for p in path.glob("*/runs.csv")) if path.is_dir() else []
    if runs:
        console.print(f"using the newest run in {path}: {runs[-1].name}")
        return runs[-1]
    raise InputError(
        f"{path}: no runs.csv here or in its subfolders; pass a folder written by "
        "`memcomp run` (results/<suite>/<timestamp>) or its suite folder (results/<suite>)"
    )


class FailOn(str, Enum):
    never = "never"
    regression = "regression"


@app.command()
@handle_errors
def compare(
    base: Path = typer.Argument(..., help="Reference results folder (or suite folder: newest)."),
    new: Path = typer.Argument(..., help="Results folder to judge against BASE."),
    html: Path = typer.Option(None, "--html", help="Also write the comparison page to FILE."),
    fail_on: FailOn = typer.Option(
        FailOn.never, "--fail-on", help="regression: exit 1 when a metric regressed beyond noise."
    ),
    junit: Path = typer.Option(None, "--junit", help="Write JUnit XML to this file."),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Significance level."),
    time_tol: float = typer.Option(
        0.10, "--time-tolerance", min=0.0, help="Smallest relative time change that counts."
    ),
    memory_tol: float = typer.Option(
        0.05, "--memory-tolerance", min=0.0, help="Smallest relative memory change that counts."
    ),
) -> None:
    """Accuracy, peak memory, s/iter and time to accuracy of two runs side by side, with verdicts.

    Cells are matched by id, or by configuration when ids differ. See README "memcomp compare"
    for the noise rules.

    Examples:

      memcomp compare results/quickstart/20261201-090000 results/quickstart/20261202-090000

      memcomp compare base/ new/ --fail-on regression --junit compare.xml --html compare.html
    """
    from memcomp.report.compare import Thresholds, compare_results, print_comparison, write_junit
    from memcomp.report.compare_html import write_compare_html

    base, new = resolve_results_dir(base), resolve_results_dir(new)
    th = Thresholds(alpha=alpha, memory=memory_tol, time=time_tol)
    cmp = compare_results(base, new, th)
    if not cmp.matched:
        raise InputError(f"{base} and {new}: no cell matches by id or by configuration")
    print_comparison(cmp, console)
    if junit is not None:
        write_junit(cmp, junit)
        console.print(escape(f"wrote {junit}"), soft_wrap=True)
    if html is not None:
        console.print(escape(f"compare.html: {write_compare_html(cmp, html)}"), soft_wrap=True)
    raise typer.Exit(1 if fail_on == FailOn.regression and cmp.regressions else 0)


@app.command("list")
@handle_errors
def list_(
    what: str = typer.Argument(None, help="learners | datasets | backbones (default: all)."),
) -> None:
    """What is registered, with one line on each and its parameters with defaults.

    Example: memcomp list learners
    """
    from memcomp.backbones import BACKBONES
    from memcomp.data import DATASETS
    from memcomp.learners import LEARNERS
    from memcomp.registry import unknown_name_message

    regs = {"learners": LEARNERS, "datasets": DATASETS, "backbones": BACKBONES}
    if what is not None and what not in regs:
        raise InputError(unknown_name_message("category", what, list(regs)))
    for name, reg in regs.items():
        if what not in (None, name):
            continue
        table = Table(title=name, show_lines=True)
        table.add_column("name", style="bold")
        table.add_column("summary")
        table.add_column("parameters (default)")
        for entry in reg:
            params = []
            for pname, f in entry.params.model_fields.items():
                params.append(f"{pname}={f.get_default(call_default_factory=True)!r}")
            table.add_row(entry.name, entry.summary, "\n".join(params))
        console.print(table)


@app.command()
@handle_errors
def schema(
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> None:
    """Print the suite JSON Schema (for editor autocompletion).

    Example: memcomp schema --out suite.schema.json
    """
    from memcomp.config import suite_json_schema

    text = json.dumps(suite_json_schema(), indent=2)
    if out:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


@app.command()
@handle_errors
def check(
    budgets: Path = typer.Argument(..., help="Budget YAML file (or a suite with `budgets:`)."),
    update: bool = typer.Option(False, "--update", help="Rewrite baselines from this run."),
    junit: Path = typer.Option(None, "--junit", help="Write JUnit XML to this file."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Fail (exit 1) when a learner's peak memory grows past its budget.

    Example: memcomp check budgets/ci.yaml --junit memcomp-budgets.xml
    """
    from memcomp.budgets import run_check

    raise typer.Exit(run_check(budgets, update=update, junit=junit, device=device, console=console))


@data_app.command("status")
@handle_errors
def data_status(
    root: Path = typer.Option(None, "--root", help="Data root (default $MEMCOMP_DATA)."),
) -> None:
    """Which datasets are present, where, with class/image counts and checksum state.

    Example: memcomp data status --root ~/data
    """
    from memcomp.data.status import dataset_status

    rows = dataset_status(root)
    table = Table(title="datasets", show_lines=True)
    for col in ("name", "present", "path", "format", "classes", "images", "checksum ok"):
        table.add_column(col, overflow="fold")
    missing = []
    for r in rows:
        ok = r.get("checksum_ok")
        table.add_row(
            r["name"],
            "[green]yes[/]" if r.get("present") else "[red]no[/]",
            str(r.get("path") or "-"),
            str(r.get("format") or "-"),
            str(r.get("classes") or "-"),
            str(r.get("images") or "-"),
            "-" if ok is None else ("[green]yes[/]" if ok else "[red]NO[/]"),
        )
        if not r.get("present"):
            missing.append(r)
    console.print(table)
    for r in missing:
        console.print(f"[bold]{r['name']}[/]: expected {escape(str(r.get('expected')))}")
        console.print(f"  {escape(str(r.get('how_to_get')))}")


@data_app.command("prepare")
@handle_errors
def data_prepare(
    name: str = typer.Argument(..., help="Dataset name, e.g. cifar-fs."),
    root: Path = typer.Option(None, "--root", help="Where the raw files are / go."),
    download: bool = typer.Option(False, "--download", help="Download when possible."),
) -> None:
    """Convert (or download) a dataset into memcomp's decoded cache.

    Example: memcomp data prepare cifar-fs --root ~/data/cifar --download
    """
    from memcomp.data.status import prepare_dataset

    info = prepare_dataset(name, root, download)
    console.print_json(json.dumps(info, default=str))


def main() -> None:
    """Console-script entry point."""
    app()
