"""Appending one cell's rows to a results table, byte for byte what a full rewrite would write.

The full rewrite (read the table, drop the cell's old rows, concatenate, ``to_csv``) is kept as
:func:`rewrite`; it is what the store did after every cell (quadratic in the suite's size). An
append gives the same bytes when the new rows do not change how the rows already in the file
print. How a column prints depends on the dtype pandas infers for it on reading, which depends
only on which KINDS of text the column holds (integers, decimals, empty, ...). So a table's
state is its header, the kinds of text per column and its cell ids; a small "prototype" table
read from one representative text per kind has the file's dtypes. The new rows are printed
after the prototype; when that changes how the prototype prints, or the file would not print
back as it is, or the header would change, or the cell already has rows, the table is rewritten.
Each append is one ``O_APPEND`` write and an ``fsync``; a failed write is truncated away.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from memcomp.results.check import check_table

try:
    from pandas._libs.parsers import STR_NA_VALUES as _NA
except ImportError:  # pragma: no cover - older pandas
    _NA = {"", "NA", "NaN", "nan", "N/A", "n/a", "NULL", "null", "None", "<NA>", "#N/A"}
NA_TEXTS = frozenset(_NA) - {""}
_INT = re.compile(r"-?(0|[1-9][0-9]{0,17})")
# what pandas' parser reads as a number (a text it prints back otherwise is "other")
_NUMERIC = re.compile(
    r"\s*[+-]?([0-9]+\.?[0-9]*(e[+-]?[0-9]+)?|\.[0-9]+(e[+-]?[0-9]+)?|inf(inity)?)\s*", re.I
)
# one representative text per kind; "other" (anything unusual) always means a rewrite
SAMPLE = {"empty": "", "na": "NA", "int": "0", "float": "0.5", "bool": "True", "str": "x"}

Reader = Callable[[Path, str], pd.DataFrame]  # (path, text) -> the table as the store reads it


def kind(text: str, textual: bool = False) -> str:
    """Which kind of text a field holds, as pandas' type inference sees it (``textual``: a
    column read as text whatever it holds)."""
    if text == "":
        return "empty"
    if text in NA_TEXTS:
        return "na"
    if textual:
        return "str"
    if _INT.fullmatch(text) and text != "-0":
        return "int"
    if _NUMERIC.fullmatch(text):
        return "float" if text in ("inf", "-inf") or _canonical_float(text) else "other"
    if text in ("True", "False"):
        return "bool"
    return "other" if text.lower() in ("true", "false") else "str"


def _canonical_float(text: str) -> bool:
    try:
        return repr(float(text)) == text
    except ValueError:
        return False


@dataclass
class TableState:
    """What decides how a table's next rows print: header, kinds per column, cell ids."""

    header: list[str]
    kinds: list[set[str]]
    textual: list[bool]
    ids: set[str] = field(default_factory=set)
    rows: int = 0
    stamp: tuple[int, int, int] = (0, 0, 0)
    proto: pd.DataFrame | None = None
    proto_text: str = ""
    sample: str = ""

    def add(self, records: list[list[str]]) -> None:
        """Record ``records`` (rows as printed) as added to the table."""
        at = self.header.index("cell_id") if "cell_id" in self.header else None
        before = sum(len(k) for k in self.kinds)
        for rec in records:
            for ks, text, textual in zip(self.kinds, rec, self.textual, strict=True):
                ks.add(kind(text, textual))
            if at is not None:
                self.ids.add(rec[at])
        self.rows += len(records)
        if sum(len(k) for k in self.kinds) != before:
            self.proto = None  # a new kind of text: the dtypes may differ

    def prototype(self, path: Path, read: Reader) -> tuple[pd.DataFrame, str]:
        """A few rows with the file's dtypes (read from one text per kind), and their CSV."""
        if self.proto is None:
            depth = max((len(k) for k in self.kinds), default=1) or 1
            cols = [sorted(k) or ["empty"] for k in self.kinds]
            lines = [[SAMPLE[c[i % len(c)]] for c in cols] for i in range(depth)]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([self.header, *lines])
            self.proto = read(path, buf.getvalue())
            self.proto_text = self.proto.to_csv(index=False)
            self.sample = buf.getvalue()
        return self.proto, self.proto_text

    def fixed_point(self, path: Path, read: Reader) -> bool:
        """Whether the file prints back as it is when read (else the next write rewrites it)."""
        if any("other" in k for k in self.kinds):
            return False
        _, text = self.prototype(path, read)
        return text == self.sample


def state_of(path: Path, text: str, textual: Collection[str]) -> TableState:
    """The state of table ``path`` holding ``text`` (checked whole first); ``textual``: the
    columns read as text."""
    check_table(path, text, ())
    records = list(csv.reader(io.StringIO(text)))
    header = records[0]
    st = TableState(header, [set() for _ in header], [c in textual for c in header])
    st.add([r for r in records[1:] if r])
    return st


def stamp(path: Path) -> tuple[int, int, int]:
    s = os.stat(path)
    return (s.st_size, s.st_mtime_ns, s.st_ino)


def append_bytes(path: Path, data: bytes) -> int:
    """Append ``data`` in one ``O_APPEND`` write, then fsync; on any error the file is truncated
    back to its size before, so nothing half-written remains. Returns that size."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:  # one write; more only when the kernel writes part of it
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            os.fsync(fd)
            raise
    finally:
        os.close(fd)
    return size


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (undoing an append), durably."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
