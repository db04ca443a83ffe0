"""The Typer application, its consoles, and the error handler every command uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from memcomp.errors import MemcompError

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
PLUGIN_HELP = (
    "Import this plugin module first (repeatable; also after the command name): it registers "
    "learners, datasets or backbones. Installed entry-point plugins need no option."
)


def handle_errors(fn: F) -> F:
    """Turn memcomp's own errors into one clean message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemcompError as e:
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def plugins_option(
    plugin: list[str] = typer.Option(None, "--plugin", metavar="MODULE", help=PLUGIN_HELP),
) -> None:
    """Every command: import ``--plugin`` modules and ``$MEMCOMP_PLUGINS`` (memcomp.plugins)."""
    from memcomp import plugins

    try:
        plugins.load_env()
        plugins.load(plugin or [])
    except MemcompError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


def hoist_plugin_options(argv: list[str]) -> list[str]:
    """Move ``--plugin M`` / ``--plugin=M`` written after the command name to the front, where
    the application's callback reads them (so every command takes the option)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--plugin" and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if arg.startswith("--plugin="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest
