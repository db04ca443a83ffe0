"""The results store appends each cell (issue 19): episodes, curves, then the runs row, each in one
``O_APPEND`` write; the files equal what the old writer (every table rewritten after every cell)
produced; a failed write leaves nothing half-written; a new column or a re-run cell rewrites."""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import memcomp.results.store as store
from memcomp.results.schema import CURVE_COLUMNS, EPISODE_COLUMNS, RUN_COLUMNS, column_order
from memcomp.results.store import ResultsDir, atomic_write_csv, read_csv

TABLES = ("episodes.csv", "curves.csv", "runs.csv")


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (a, b) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else b


def old_append(path: Path, run: dict, curve: list[dict], episodes: list[float]) -> None:
    """ResultsDir.append as it was before the append (main at 66de912), for comparison."""
    cid = run["cell_id"]
    path.mkdir(parents=True, exist_ok=True)
    ep = read_csv(path / "episodes.csv", EPISODE_COLUMNS)
    ep = ep[ep["cell_id"] != cid] if len(ep) else ep
    new_ep = pd.DataFrame(
        {"cell_id": cid, "episode": range(len(episodes)), "acc": episodes},
        columns=EPISODE_COLUMNS,
    )
    atomic_write_csv(path / "episodes.csv", _concat(ep, new_ep))
    cu = read_csv(path / "curves.csv", CURVE_COLUMNS)
    cu = cu[cu["cell_id"] != cid] if len(cu) else cu
    atomic_write_csv(path / "curves.csv", _concat(cu, pd.DataFrame(curve, columns=CURVE_COLUMNS)))
    runs = read_csv(path / "runs.csv", RUN_COLUMNS)
    runs = runs[runs["cell_id"] != cid] if len(runs) else runs
    row = pd.DataFrame([run])
    cols = column_order([*row.columns, *runs.columns])
    atomic_write_csv(path / "runs.csv", _concat(runs, row).reindex(columns=cols))


def cell(cid: str, **extra: Any) -> tuple[dict, list[dict], list[float]]:
    run = {"cell_id": cid, "suite": "s", "label": f"maml, {cid}", "status": "ok", "error": "",
           "ways": 5, "shots": 1, "test_acc": 51.25, "peak_mem_mb": 12.5, "matmul_tf32": False,
           "diverged_at": None, "protocol": "test=standard; ci95=1.96*std/sqrt(n)"}  # fmt: skip
    run.update(extra)
    curve = [{"cell_id": cid, "iteration": k, "train_seconds": 0.25 * k, "val_acc": 40.0 + k,
              "val_ci95": 1.5} for k in (1, 2)]  # fmt: skip
    return run, curve, [50.0, 62.5, 41.0]


# cells whose values change how earlier rows print (an int column gaining an empty value, a
# bool column gaining None, text that reads back as NaN, a multi-line error, new columns)
CELLS = [
    cell("a1", **{"learner.inner_steps": 5, "learner.inner_lr": 0.1}),
    cell("a2", **{"learner.inner_steps": 1, "learner.inner_lr": 0.1, "diverged_at": 3}),
    cell("a3", **{"learner.inner_steps": 5, "learner.inner_lr": 0.5, "mem_inner_mb": 2.5}),
    cell("a4", status="error", error='boom, "quoted"\nsecond line', test_acc=None),
    cell("a5", **{"learner.inner_steps": None, "matmul_tf32": None, "label": "NA"}),
    cell("a6", **{"learner.inner_steps": 3, "learner.inner_lr": 0.01, "mem_inner_mb": 1.0}),
    cell("a7", **{"learner.inner_steps": 2, "learner.inner_lr": 0.01, "test_acc": 50}),
]


def records(path: Path) -> dict[str, list[str]]:
    """A table's fields as printed, by column (the order of the columns aside)."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return {h: [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])}


def test_appends_print_what_the_old_writer_printed(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    rd = ResultsDir(new)
    for run, curve, eps in CELLS:
        old_append(old, dict(run), curve, eps)
        rd.append(dict(run), curve, eps)
        for name in TABLES:
            assert (new / name).read_bytes() == (old / name).read_bytes(), name


def test_runs_keeps_its_column_order_where_the_old_writer_moved_it(tmp_path: Path) -> None:
    """The old writer put the new row's parameters first: every change of learner reordered
    (and rewrote) runs.csv. The append keeps the order; every field prints the same."""
    cells = [
        cell("m1", **{"learner.inner_steps": 5}),
        cell("p1", **{"learner.distance": "euclidean"}),
        cell("m2", **{"learner.inner_steps": 1}),
        cell("p2", **{"learner.distance": "cosine"}),
    ]
    old, new = tmp_path / "old", tmp_path / "new"
    for run, curve, eps in cells:
        old_append(old, dict(run), curve, eps)
        ResultsDir(new).append(dict(run), curve, eps)
    assert records(new / "runs.csv") == records(old / "runs.csv")
    for name in ("episodes.csv", "curves.csv"):
        assert (new / name).read_bytes() == (old / name).read_bytes()
    header = (new / "runs.csv").read_text().splitlines()[0].split(",")
    assert header.index("learner.inner_steps") < header.index("learner.distance")


class Writes:
    """Spy on os.write and atomic rewrites: bytes per file, writes per file, rewrites."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_on: str | None = None) -> None:
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.rewrites: list[str] = []
        self.fail_on = fail_on
        real_write, real_atomic = os.write, store.atomic_write_text

        def write(fd: int, data: Any) -> int:
            name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
            if name in TABLES:
                assert os.O_APPEND & fcntl.fcntl(fd, fcntl.F_GETFL)
                if name == self.fail_on:
                    real_write(fd, bytes(data)[: len(data) // 2])  # half of it reached the disk
                    raise OSError(errno.ENOSPC, "No space left on device")
                self.calls[name] = self.calls.get(name, 0) + 1
                self.bytes[name] = self.bytes.get(name, 0) + len(data)
            return real_write(fd, data)

        def atomic(path: Path, text: str) -> None:
            self.rewrites.append(Path(path).name)
            self.bytes[Path(path).name] = self.bytes.get(Path(path).name, 0) + len(text)
            real_atomic(path, text)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(store, "atomic_write_text", atomic)


def test_each_table_grows_by_one_append_per_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linear, not quadratic: 40 cells write each table about once over (the first cell and
    the first cell with a new column are rewrites)."""
    spy = Writes(monkeypatch)
    rd = ResultsDir(tmp_path)
    for i in range(40):
        run, curve, eps = cell(f"c{i:02d}", **{"learner.inner_steps": 5})
        if i >= 20:
            run["mem_inner_mb"] = 1.5  # a new column: one rewrite of runs.csv
        rd.append(run, curve, eps)
    assert spy.rewrites == [*TABLES, "runs.csv"]
    assert spy.calls == {"episodes.csv": 39, "curves.csv": 39, "runs.csv": 38}
    for name in TABLES:
        size = (tmp_path / name).stat().st_size
        assert spy.bytes[name] < 1.6 * size, name
    runs = rd.runs()
    assert len(runs) == 40 and runs["mem_inner_mb"].isna().sum() == 20


def test_a_rerun_cell_replaces_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    seq = [cell("a"), cell("b"), cell("a", status="oom", test_acc=None), cell("c")]
    for run, curve, eps in seq:
        old_append(old, dict(run), curve, eps)
        ResultsDir(new).append(dict(run), curve, eps)
    for name in TABLES:
        assert (new / name).read_bytes() == (old / name).read_bytes(), name
    runs = ResultsDir(new).runs()
    assert runs["cell_id"].tolist() == ["b", "a", "c"]
    assert (ResultsDir(new).episodes()["cell_id"] == "a").sum() == 3


@pytest.mark.parametrize("fail_on", TABLES)
def test_a_full_disk_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    rd = ResultsDir(tmp_path)
    for i in range(3):
        rd.append(*cell(f"c{i}"))
    before = {n: (tmp_path / n).read_bytes() for n in TABLES}
    Writes(monkeypatch, fail_on=fail_on)
    with pytest.raises(OSError) as e:
        rd.append(*cell("c3"))
    assert e.value.errno == errno.ENOSPC
    from memcomp.exec.schedule import is_disk_full

    assert is_disk_full(e.value)
    for n in TABLES:  # this cell's appends are undone in every table
        assert (tmp_path / n).read_bytes() == before[n], n
    monkeypatch.undo()
    rd.append(*cell("c3"))  # and the next write goes on from a whole file
    assert ResultsDir(tmp_path).runs()["cell_id"].tolist() == ["c0", "c1", "c2", "c3"]


def test_the_runs_row_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rd = ResultsDir(tmp_path)
    rd.append(*cell("c0"))
    order: list[str] = []
    real = os.write

    def write(fd: int, data: Any) -> int:
        order.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    rd.append(*cell("c1"))
    assert [n for n in order if n in TABLES] == list(TABLES)


def test_another_process_appending_is_seen(tmp_path: Path) -> None:
    """The state of a table is re-read when the file changed under it (e.g. another writer)."""
    ResultsDir(tmp_path).append(*cell("c0"))
    old_append(tmp_path / "ref", *cell("c0"))
    old_append(tmp_path / "ref", *cell("c1", diverged_at=4))
    old_append(tmp_path, *cell("c1", diverged_at=4))  # not through the store's state
    ResultsDir(tmp_path).append(*cell("c2"))
    old_append(tmp_path / "ref", *cell("c2"))
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
