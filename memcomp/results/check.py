"""Structural checks of a results table before pandas reads it: every record has the header's
field count, the required columns are there, and the file ends with a whole line.

pandas pads a short row with NaN and reads a header cut in half as a narrower table, so a torn
write would otherwise pass as made-up values. A torn LAST line (what an interrupted append
leaves) is a :class:`TornTailError`, which ``memcomp run --resume`` repairs by truncating it.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from memcomp.errors import InputError

REQUIRED = {
    "runs.csv": ("cell_id",),
    "curves.csv": ("cell_id", "iteration", "train_seconds", "val_acc"),
    "episodes.csv": ("cell_id", "episode", "acc"),
}


class CorruptResultsError(InputError):
    """A results file that cannot be read (exit 2); the message names the file."""


class TornTailError(CorruptResultsError):
    """The last line of a results table is cut short (an interrupted write); ``good_size`` is the
    file's length without it."""

    def __init__(self, path: Path, detail: str, good_size: int) -> None:
        super().__init__(
            f"{path}: the last line is cut short ({detail}: a write was interrupted); "
            f"`memcomp run SUITE --resume {path.parent}` repairs it and re-runs that cell, "
            "or restore the file from a backup"
        )
        self.path, self.good_size = path, good_size


def check_table(
    path: Path, text: str | bytes | None = None, required: tuple[str, ...] | None = None
) -> None:
    """Raise :class:`CorruptResultsError` (:class:`TornTailError` for a torn last line) when
    results table ``path`` is not whole. ``text``: its contents (text or bytes); None reads the
    file as a UTF-8 stream, never whole in memory."""
    if required is None:
        required = REQUIRED.get(path.name, ())
    if isinstance(text, str):
        text = text.encode("utf-8")
    raw: BinaryIO = open(path, "rb") if text is None else io.BytesIO(text)  # noqa: SIM115
    with raw:
        _check_stream(path, io.TextIOWrapper(raw, encoding="utf-8", newline="\n"), required)


def _check_stream(path: Path, stream: io.TextIOWrapper, required: tuple[str, ...]) -> None:
    tail = [""]  # the last line read

    def lines() -> Iterator[str]:
        for line in stream:
            tail[0] = line
            yield line

    reader = csv.reader(lines())
    try:
        first = stream.readline()
        if not first.endswith("\n"):  # no line end in the whole table
            raise CorruptResultsError(
                f"{path}: the header line is cut short (no line end after {len(first)} "
                "characters); restore the file from a backup, or delete it to re-run its cells "
                "with --resume"
            )
        tail[0] = first
        reader = csv.reader(itertools.chain([first], lines()))
        header = next(reader, [])
        missing = [c for c in required if c not in header]
        if missing:
            raise CorruptResultsError(
                f"{path}: the header lacks {', '.join(missing)} (a damaged header, or not a "
                "memcomp results table); restore the file from a backup"
            )
        n, bad, before = len(header), None, reader.line_num
        for rec in reader:
            if bad is not None:
                raise CorruptResultsError(
                    f"{path}: not a readable CSV table (line {bad[1] + 1} has {bad[0]} fields, "
                    f"the header {n}); restore the file or remove that row (a missing row is "
                    "re-run by --resume)"
                )
            if rec and len(rec) != n:
                bad = (len(rec), before)
            before = reader.line_num
    except csv.Error as e:
        raise CorruptResultsError(f"{path}: not a readable CSV table ({e})") from None
    except UnicodeDecodeError as e:
        raise CorruptResultsError(
            f"{path}: not a readable CSV table (bytes that are not UTF-8: {e.reason} near line "
            f"{reader.line_num + 1}); restore it from a backup or remove the broken rows (a "
            "missing row is re-run by --resume)"
        ) from None
    if bad is not None:
        raise TornTailError(path, f"{bad[0]} of {n} fields", _offset(stream, bad[1]))
    if not tail[0].endswith("\n"):
        raise TornTailError(path, "no line end", _offset(stream, before))


def _offset(stream: io.TextIOWrapper, lines: int) -> int:
    """Length in bytes of the first ``lines`` lines of the table read by ``stream``."""
    raw = stream.buffer
    raw.seek(0)
    for _ in range(lines):
        if not raw.readline():
            break
    return raw.tell()
