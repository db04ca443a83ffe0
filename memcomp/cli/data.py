"""``memcomp data status|prepare``: the real benchmark datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from memcomp.cli.app import console, data_app, handle_errors
from memcomp.cli.common import TextTable, styled


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
    table = TextTable(title="datasets", show_lines=True)
    for col in ("name", "present", "path", "format", "classes", "images", "checksum ok"):
        table.add_column(col, overflow="fold")
    missing = []
    for r in rows:
        ok = r.get("checksum_ok")
        table.add_row(
            r["name"],
            styled("yes", "green") if r.get("present") else styled("no", "red"),
            str(r.get("path") or "-"),
            str(r.get("format") or "-"),
            str(r.get("classes") or "-"),
            str(r.get("images") or "-"),
            "-" if ok is None else (styled("yes", "green") if ok else styled("NO", "red")),
        )
        if not r.get("present"):
            missing.append(r)
    console.print(table)
    for r in missing:
        console.print(f"[bold]{escape(r['name'])}[/]: expected {escape(str(r.get('expected')))}")
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
