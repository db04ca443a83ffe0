"""Results on disk: ``results/<suite>/<timestamp>/`` with runs.csv, curves.csv, episodes.csv and
manifest.json. A cell's rows are appended (episodes, curves, then its runs row last: the commit
point), each table in one ``O_APPEND`` write with fsync, truncated back when the write fails;
the manifest and any full rewrite are atomic (temporary file, then rename). A killed run leaves
at most a torn last line, which readers report and ``--resume`` repairs. Reading checks the
files: a corrupt one is a :class:`CorruptResultsError` (exit 2) naming the file and what is
wrong; curves and episodes rows of a cell without a runs row (a crash between the writes) are
dropped; schema-1 runs tables are mapped onto schema 2.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.fsutil import atomic_write_text
from memcomp.results.append import TableState, append_bytes, stamp, state_of, truncate
from memcomp.results.check import CorruptResultsError, TornTailError, check_table
from memcomp.results.schema import (
    CONFIG_COLUMNS,
    CURVE_COLUMNS,
    EPISODE_COLUMNS,
    MEASURE_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    column_order,
    column_type,
    schema_version,
    upgrade_runs,
)

# read as text whatever they look like: an all-digit cell id (1 in 280) is no number
TEXT_COLUMNS = {c: str for c, t in (CONFIG_COLUMNS | MEASURE_COLUMNS).items() if t == "str"}


# the manifest keys readers rely on, and their types
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,), "suite_text": (str,), "cells": (dict,), "precision": (dict,),
    "resumes": (list,), "options": (dict,), "merged_from": (list,),
}  # fmt: skip
# the append state of every table this process wrote or read for writing, by resolved path
_STATES: dict[str, TableState] = {}
# the cell ids of every runs.csv read, by resolved path, with the file's (size, mtime, inode)
_IDS: dict[str, tuple[tuple[int, int, int], set[str]]] = {}
Combine = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def atomic_write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def read_csv(path: Path, columns: list[str] | None = None, torn_ok: bool = False) -> pd.DataFrame:
    """Read a results table; a missing file is an empty table with ``columns``.

    A table that is not whole (a record with another field count than the header, a header cut
    short or lacking a required column, a torn last line) or that pandas cannot parse (an
    unterminated quote, bytes that are not UTF-8) raises :class:`CorruptResultsError` naming
    ``path`` and the problem. ``torn_ok``: a torn last line is left out instead.
    """
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns or [])
    try:
        check_table(path)  # streamed: the file is never whole in memory
    except TornTailError as e:
        if not torn_ok:
            raise
        with open(path, "rb") as f:
            return parse_csv(path, f.read(e.good_size), columns)
    return parse_csv(path, path, columns)


def parse_csv(
    path: Path, text: str | bytes | Path, columns: list[str] | None = None
) -> pd.DataFrame:
    """The table in ``text`` (the contents of ``path``: text, UTF-8 bytes, or the file itself,
    read by pandas in chunks) as the store reads it."""
    source: Any = text
    if isinstance(text, (str, bytes)):
        source = io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text)
    try:
        df = _read_chunked(source)
    except (pd.errors.ParserError, csv.Error, ValueError) as e:
        why = " ".join(str(e).split())
        raise CorruptResultsError(
            f"{path}: not a readable CSV table ({why}); restore it from a backup or "
            "remove the broken rows (a missing row is re-run by --resume)"
        ) from None
    if columns and "cell_id" in columns and "cell_id" not in df.columns:
        raise CorruptResultsError(f"{path}: no cell_id column; not a memcomp results table")
    return _numbers_checked(path, df)


CHUNK_ROWS = 20_000  # rows pandas parses at a time: a 200,000-row runs.csv peaks 0.33 GB, not 0.48


def _read_chunked(source: Any) -> pd.DataFrame:
    """``pd.read_csv`` of ``source`` in chunks of :data:`CHUNK_ROWS` rows, concatenated (the
    same frame as one read, with a lower peak: the parser's buffers are one chunk's)."""
    with pd.read_csv(source, dtype=TEXT_COLUMNS, encoding="utf-8", chunksize=CHUNK_ROWS) as it:
        chunks = list(it)
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:  # a header without rows
        if hasattr(source, "seek"):
            source.seek(0)
        return pd.read_csv(source, dtype=TEXT_COLUMNS, encoding="utf-8")
    return pd.concat(chunks, ignore_index=True)


def _numbers_checked(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column the schema types as a number checked (and made numeric): a value
    that is not a number (a shifted row, a hand edit) is a :class:`CorruptResultsError`."""
    for col in df.columns:
        if column_type(str(col)) not in ("int", "float") or pd.api.types.is_numeric_dtype(df[col]):
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise CorruptResultsError(
                f"{path}: column {col!r} holds {str(df[col].iloc[row])[:40]!r} on line {row + 2}, "
                "not a number; fix or remove that row (a missing row is re-run by --resume)"
            )
        df[col] = values
    return df


class ResultsDir:
    """One run's results folder; rows are appended cell by cell (runs row last)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def runs_csv(self) -> Path:
        return self.path / "runs.csv"

    @property
    def curves_csv(self) -> Path:
        return self.path / "curves.csv"

    @property
    def episodes_csv(self) -> Path:
        return self.path / "episodes.csv"

    @property
    def manifest_json(self) -> Path:
        return self.path / "manifest.json"

    def raw_runs(self, torn_ok: bool = False) -> pd.DataFrame:
        """runs.csv as written (schema of the folder); ``torn_ok``: without a torn last line."""
        df = read_csv(self.runs_csv, RUN_COLUMNS, torn_ok)
        if self.runs_csv.exists() and not torn_ok:
            ids = set(df["cell_id"].dropna().astype(str)) if "cell_id" in df.columns else set()
            _IDS[str(self.runs_csv.resolve())] = (stamp(self.runs_csv), ids)
        return df

    def _run_ids(self) -> set[str]:
        """The cell ids with a runs row (cached while runs.csv is unchanged)."""
        if not self.runs_csv.exists():
            return set()
        key = str(self.runs_csv.resolve())
        if key not in _IDS or _IDS[key][0] != stamp(self.runs_csv):
            self.raw_runs()
        return _IDS[key][1]

    def _committed(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` without the rows of cells that have no runs row (a crash between writes)."""
        if not len(df) or "cell_id" not in df.columns:
            return df
        keep = df["cell_id"].astype(str).isin(self._run_ids())
        return df if bool(keep.all()) else df[keep].reset_index(drop=True)

    def check_ends(self) -> None:
        """Check the header and the last line of curves.csv and episodes.csv (cheap: a torn
        tail or a cut header is a :class:`CorruptResultsError`; their rows hold no line ends)."""
        for path in (self.curves_csv, self.episodes_csv):
            if not path.exists() or not path.stat().st_size:
                continue
            with open(path, "rb") as f:
                head = f.read(4096)
                f.seek(max(0, path.stat().st_size - 4096))
                tail = f.read()
            try:
                header = head.decode("utf-8").split("\n", 1)[0] + "\n"
                last = tail.decode("utf-8", errors="replace").rstrip("\n").rsplit("\n", 1)[-1]
            except UnicodeDecodeError:
                header, last = head.decode("utf-8", errors="replace"), ""
            text = header if b"\n" not in head or last == header.strip() else header + last
            check_table(path, text + ("\n" if tail.endswith(b"\n") else ""))

    def torn_tails(self) -> list[TornTailError]:
        """The tables whose last line is cut short (what an interrupted append leaves)."""
        out = []
        for path in (self.runs_csv, self.curves_csv, self.episodes_csv):
            if path.exists() and path.stat().st_size:
                with contextlib.suppress(UnicodeDecodeError, CorruptResultsError):
                    try:
                        check_table(path)
                    except TornTailError as e:
                        out.append(e)
        return out

    def repair_torn_tails(self) -> list[str]:
        """Cut every torn last line off (its cell has no complete rows: it runs again); one
        note per file repaired."""
        notes = []
        for e in self.torn_tails():
            size = e.path.stat().st_size
            truncate(e.path, e.good_size)
            _STATES.pop(str(e.path.resolve()), None)
            notes.append(
                f"{e.path}: removed a torn last line ({size - e.good_size} bytes left by an "
                "interrupted write); its cell runs again"
            )
        return notes

    def runs(self, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
        """runs.csv in schema 2 (a schema-1 folder is mapped)."""
        raw = self.raw_runs()
        ids = raw["cell_id"].fillna("").astype(str) if len(raw) else raw.get("cell_id")
        if ids is not None and ids.duplicated().any():
            dup = ids[ids.duplicated()].iloc[0]
            lines = [i + 2 for i in range(len(ids)) if ids.iloc[i] == dup]
            raise CorruptResultsError(
                f"{self.runs_csv}: cell {dup} has {len(lines)} rows (lines "
                f"{', '.join(map(str, lines))}); memcomp writes one per cell: keep one of them"
            )
        if manifest is None:
            manifest = self.manifest_or_empty()
        return upgrade_runs(raw, schema_version(manifest, raw))

    def curves(self) -> pd.DataFrame:
        """curves.csv, rows of cells with a runs row."""
        return self._committed(read_csv(self.curves_csv, CURVE_COLUMNS))

    def episodes(self) -> pd.DataFrame:
        """episodes.csv, rows of cells with a runs row."""
        return self._committed(read_csv(self.episodes_csv, EPISODE_COLUMNS))

    def manifest(self) -> dict[str, Any]:
        """manifest.json ({} when missing); :class:`CorruptResultsError` when unreadable."""
        if not self.manifest_json.exists():
            return {}
        try:
            data = json.loads(self.manifest_json.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptResultsError(f"{self.manifest_json}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise CorruptResultsError(f"{self.manifest_json}: not a JSON object")
        for key, types in MANIFEST_TYPES.items():
            if key in data and data[key] is not None and not isinstance(data[key], types):
                raise CorruptResultsError(
                    f"{self.manifest_json}: {key!r} is a JSON {_json_type(data[key])}, not "
                    f"{' or '.join(map(_json_type, types))}; restore the file from a backup"
                )
        return data

    def manifest_or_empty(self) -> dict[str, Any]:
        """The manifest, or {} when it is missing or unreadable."""
        try:
            return self.manifest()
        except CorruptResultsError:
            return {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_json, json.dumps(manifest, indent=2, default=str))

    def append(
        self, run: dict[str, Any], curve: list[dict[str, Any]], episodes: list[float]
    ) -> None:
        """Add one cell's results, replacing any earlier rows of the same cell id.

        Episodes, then curves, then the runs row (the commit point read by resume): each an
        append of one write (a rewrite when the cell already has rows, when runs gains a
        column, or when the new rows would change how the file's rows print). When a write
        fails, the appends of this cell are truncated away and the error is raised.
        """
        cid = run["cell_id"]
        self.path.mkdir(parents=True, exist_ok=True)
        new_ep = pd.DataFrame(
            {"cell_id": cid, "episode": range(len(episodes)), "acc": episodes},
            columns=EPISODE_COLUMNS,
        )
        tables: list[tuple[Path, list[str], pd.DataFrame, Combine]] = [
            (self.episodes_csv, EPISODE_COLUMNS, new_ep, _concat),
            (self.curves_csv, CURVE_COLUMNS, pd.DataFrame(curve, columns=CURVE_COLUMNS), _concat),
            (self.runs_csv, RUN_COLUMNS, pd.DataFrame([run]), _with_row),
        ]
        done: list[tuple[Path, int]] = []
        try:
            for path, columns, new, combine in tables:
                size = _add(path, columns, new, combine, str(cid))
                if size is not None:
                    done.append((path, size))
        except BaseException:
            for path, size in done:
                with contextlib.suppress(OSError):
                    truncate(path, size)
                _STATES.pop(str(path.resolve()), None)
            raise


def _add(
    path: Path, columns: list[str], new: pd.DataFrame, combine: Combine, cid: str
) -> int | None:
    """Add ``new`` (rows of cell ``cid``) to table ``path``: the size before when appended,
    None when the table was rewritten (or left as it is)."""
    key = str(path.resolve())
    st = _STATES.get(key)
    if path.exists() and path.stat().st_size and (st is None or st.stamp != stamp(path)):
        st = state_of(path, path.read_text(encoding="utf-8"), TEXT_COLUMNS)
        st.stamp = stamp(path)
        _STATES[key] = st
    elif not path.exists() or not path.stat().st_size:
        st = None
    read = parse_csv
    if st is None or not st.rows or cid in st.ids or not st.fixed_point(path, read):
        _rewrite(path, columns, new, combine, cid)
        return None
    if not len(new):
        return None  # a rewrite would print the same bytes
    proto, proto_text = st.prototype(path, read)
    text = combine(proto, new).to_csv(index=False)
    if not text.startswith(proto_text):  # the new rows change dtypes, or the header
        _rewrite(path, columns, new, combine, cid)
        return None
    chunk = text[len(proto_text) :]
    size = append_bytes(path, chunk.encode("utf-8"))
    st.add([r for r in csv.reader(io.StringIO(chunk)) if r])
    st.stamp = stamp(path)
    return size


def _rewrite(path: Path, columns: list[str], new: pd.DataFrame, combine: Combine, cid: str) -> None:
    """The whole table rewritten atomically without ``cid``'s old rows, with ``new``."""
    old = read_csv(path, columns)
    old = old[old["cell_id"] != cid] if len(old) else old
    text = combine(old, new).to_csv(index=False)
    atomic_write_text(path, text)
    st = state_of(path, text, TEXT_COLUMNS)
    st.stamp = stamp(path)
    _STATES[str(path.resolve())] = st


def _json_type(value: Any) -> str:
    t = value if isinstance(value, type) else type(value)
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        t, t.__name__
    )


def _with_row(runs: pd.DataFrame, row: pd.DataFrame) -> pd.DataFrame:
    """``runs`` and ``row`` under the union header; the table's columns keep their order (the
    writer before the append put the new row's parameters first, so the header changed with
    every learner and the table was rewritten)."""
    cols = column_order([*runs.columns, *row.columns])
    return _concat(runs, row).reindex(columns=cols)


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (a, b) if len(f)]
    if not frames:
        return b
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "CURVE_COLUMNS", "EPISODE_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "CorruptResultsError",
    "ResultsDir", "TornTailError", "atomic_write_csv", "parse_csv", "read_csv",
]  # fmt: skip
