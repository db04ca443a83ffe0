"""Structural checks of a results table before pandas reads it: every record has the header's
field count, the required columns are there, and the file ends with a whole line.

pandas pads a short row with NaN and reads a header cut in half as a narrower table, so a torn
write would otherwise pass as made-up values. A torn LAST line (what an interrupted append
leaves) is a :class:`TornTailError`, which ``memcomp run --resume`` repairs by truncating it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

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


def check_table(path: Path, text: str, required: tuple[str, ...] | None = None) -> None:
    """Raise :class:`CorruptResultsError` (:class:`TornTailError` for a torn last line) when
    ``text``, the contents of results table ``path``, is not whole."""
    if required is None:
        required = REQUIRED.get(path.name, ())
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, [])
        if "\n" not in text:
            raise CorruptResultsError(
                f"{path}: the header line is cut short (no line end after {len(text)} "
                "characters); restore the file from a backup, or delete it to re-run its cells "
                "with --resume"
            )
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
    if bad is not None:
        raise TornTailError(path, f"{bad[0]} of {n} fields", _offset(text, bad[1]))
    if not text.endswith("\n"):
        raise TornTailError(path, "no line end", _offset(text, before))


def _offset(text: str, lines: int) -> int:
    """Length in bytes of the first ``lines`` lines of ``text``."""
    pos = 0
    for _ in range(lines):
        nxt = text.find("\n", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return len(text[:pos].encode("utf-8"))
