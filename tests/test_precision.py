"""``train.precision`` and the cuDNN switches: validation and the dtype rule, cell ids of older
suites unchanged, the flags applied in the cell (inline and in a cell process) and recorded in
every row and the manifest, tf32/bf16 refused where the device cannot run them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from memcomp.config import ConfigError, expand, from_json, suite_from_dict, to_json
from memcomp.config.settings import PRECISION_MODES, TrainConfig, planned_flags
from memcomp.engine import run_cell
from memcomp.engine.setup import CellSetup
from memcomp.measure import precision as prec
from memcomp.measure.precision import PrecisionPlan, capture_flags, precision_flags, unsupported

ROOT = Path(__file__).resolve().parent.parent

SUITE: dict[str, Any] = {
    "name": "ids",
    "device": "cpu",
    "datasets": [{"name": "synthetic", "image_size": 8, "channels": 1}],
    "settings": [{"ways": 3, "shots": 1, "queries": 2}],
    "backbones": [{"name": "conv4", "hidden": 3, "blocks": 2}],
    "train": {"iterations": 1},
    # batched as the default was before `execution: auto` (issue 17), so the ids below are the
    # ones memcomp computed before the precision keys existed
    "learners": [{"name": "maml", "execution": "batched"}],
}
RUN = {"seeds": [0], "test": {"episodes": 1}}  # for the cells that run
# ids computed by memcomp before the precision keys existed (commit 18ec552); the checked-in
# suites' ids are pinned by tests/test_config_cell_ids.py
ID_FLOAT32, ID_FLOAT64 = "fa03ccb93074", "4da94ce6195d"  # SUITE; SUITE with dtype: float64


def cells(
    train: dict[str, Any] | None = None, learners: list[dict] | None = None, **top: Any
) -> list:
    suite = {**copy.deepcopy(SUITE), **top}
    suite["train"].update(train or {})
    if learners is not None:
        suite["learners"] = learners
    return expand(suite_from_dict(suite))


def problems(train: dict[str, Any], learners: list[dict] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        cells(train, learners)
    return str(e.value)


# ----------------------------------------------------------------------------- configuration


def test_suites_without_the_new_keys_keep_their_cell_ids() -> None:
    assert cells()[0].id == ID_FLOAT32 and cells({"dtype": "float64"})[0].id == ID_FLOAT64


def test_spelled_out_defaults_and_the_dtype_synonym_give_the_same_id() -> None:
    assert cells({"precision": "float32"})[0].id == ID_FLOAT32
    assert cells({"precision": "float32", "dtype": "float32"})[0].id == ID_FLOAT32
    assert cells({"cudnn_benchmark": False, "cudnn_deterministic": False})[0].id == ID_FLOAT32
    assert cells({"precision": "float64"})[0].id == ID_FLOAT64
    ids = {cells({"precision": p})[0].id for p in ("float32", "tf32", "bf16", "float64")}
    ids |= {cells({"cudnn_benchmark": True})[0].id, cells({"cudnn_deterministic": True})[0].id}
    assert len(ids) == 6  # each a different cell (no duplicate error between them)


def test_cells_differing_only_in_precision_are_distinct_cells() -> None:
    learners = [{"name": "maml", "train": {"precision": p}} for p in ("float32", "bf16")]
    got = cells(learners=learners)
    assert [c.train.precision for c in got] == ["float32", "bf16"]
    assert got[0].id != got[1].id
    dup = problems({}, [{"name": "maml", "train": {"precision": "float32"}}, {"name": "maml"}])
    assert "duplicate cell" in dup


def test_contradicting_dtype_and_precision_in_one_mapping_is_one_line_naming_both() -> None:
    msg = problems({"dtype": "float64", "precision": "bf16"})
    assert msg == (
        "<suite>: train.precision: contradicts dtype float64 (precision bf16 keeps weights in "
        "float32): drop dtype, precision replaces it (got 'bf16')"
    )
    msg = problems({}, [{"name": "maml", "train": {"precision": "float64", "dtype": "float32"}}])
    assert "learners[0].train.precision: contradicts dtype float32" in msg
    assert "must be one of 'float32', 'tf32', 'bf16' or 'float64' (got 'fp16')" in problems(
        {"precision": "fp16"}
    )
    assert "cudnn_benchmark: must be true or false" in problems({"cudnn_benchmark": "yes"})


def test_the_more_specific_of_dtype_and_precision_wins() -> None:
    (a,) = cells({"dtype": "float64"}, [{"name": "maml", "train": {"precision": "bf16"}}])
    (b,) = cells({"precision": "bf16"}, [{"name": "maml", "train": {"dtype": "float64"}}])
    (c,) = cells({"precision": "float64"}, [{"name": "maml", "train": {"lr": 0.01}}])
    assert (planned_flags(a.train)["precision"], a.train.dtype) == ("bf16", "float32")
    assert (planned_flags(b.train)["precision"], b.train.dtype) == ("float64", "float64")
    assert (planned_flags(c.train)["precision"], c.train.dtype) == ("float64", "float64")


def test_a_cell_with_precision_keys_survives_the_trip_to_a_cell_process() -> None:
    train = {"precision": "bf16", "cudnn_benchmark": True, "cudnn_deterministic": True}
    (cell,) = cells(train)
    back = from_json(json.loads(json.dumps(to_json(cell))))
    assert back.id == cell.id and back.train == cell.train


def test_every_precision_has_a_mode_and_the_schema_lists_the_keys() -> None:
    assert set(PRECISION_MODES) == {"float32", "tf32", "bf16", "float64"}
    fields = TrainConfig.model_json_schema()["properties"]
    assert {"precision", "cudnn_benchmark", "cudnn_deterministic"} <= set(fields)
    assert fields["cudnn_benchmark"]["default"] is False


# ----------------------------------------------------------------------------- flags


@pytest.mark.parametrize("precision", ["float32", "tf32", "bf16", "float64"])
def test_flags_are_set_inside_the_block_and_restored_after(precision: str) -> None:
    (cell,) = cells({"precision": precision, "cudnn_benchmark": True})
    plan = PrecisionPlan.from_flags(planned_flags(cell.train))
    before = capture_flags()
    with precision_flags(plan) as in_force:
        now = capture_flags()
        assert torch.backends.cudnn.benchmark is True  # really set in torch, not only recorded
        assert torch.backends.cuda.matmul.allow_tf32 is (precision == "tf32")
        assert torch.backends.cudnn.allow_tf32 is (precision == "tf32")
    assert in_force == now
    want = "high" if precision == "tf32" else "highest"
    assert now["float32_matmul_precision"] == want
    assert capture_flags() == before


def test_autocast_records_the_dtype_found_in_force() -> None:
    bf16 = PrecisionPlan.from_flags(planned_flags(TrainConfig(precision="bf16")))
    f32 = PrecisionPlan.from_flags(planned_flags(TrainConfig()))
    ac = prec.Autocast(bf16, torch.device("cpu"))
    with ac():
        y = torch.ones(2, 3) @ torch.ones(3, 2)
    assert y.dtype == torch.bfloat16 and ac.seen == "bfloat16"
    plain = prec.Autocast(f32, torch.device("cpu"))
    with plain():
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32
    assert plain.seen == "none"


def test_tf32_and_bf16_are_refused_where_the_device_cannot_run_them(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert "tf32 is CUDA only" in str(unsupported("tf32", cpu))
    assert unsupported("bf16", cpu) is None and unsupported("float64", cpu) is None
    capability = {"value": (7, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability["value"])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cuda = torch.device("cuda")
    assert "needs TF32 tensor cores (compute capability 8.0+); this GPU is 7.0" in str(
        unsupported("tf32", cuda)
    )
    assert "bf16 needs bfloat16 support" in str(unsupported("bf16", torch.device("cuda", 0)))
    assert unsupported("float32", cuda) is None
    capability["value"] = (9, 0)
    assert unsupported("tf32", cuda) is None and unsupported("bf16", cuda) is None


# ----------------------------------------------------------------------------- rows, manifest


def test_the_cell_applies_its_flags_and_the_row_records_what_was_in_force() -> None:
    (cell,) = cells(
        {"precision": "bf16", "cudnn_benchmark": True, "cudnn_deterministic": True,
         "meta_batch": 1, "val_episodes": 1},
        [{"name": "maml", "inner_steps": 1}],
        **RUN,
    )  # fmt: skip
    seen: list[dict[str, Any]] = []

    def probe(setup: CellSetup) -> None:
        inner = setup.learner.meta_backward

        def meta_backward(tasks: Any) -> Any:
            seen.append({**capture_flags(), "autocast": torch.get_autocast_dtype("cpu")})
            seen[-1]["on"] = torch.is_autocast_enabled("cpu")
            return inner(tasks)

        setup.learner.meta_backward = meta_backward  # type: ignore[method-assign]

    before = capture_flags()
    row = run_cell(cell, torch.device("cpu"), on_setup=probe).row
    assert row["status"] == "ok", row.get("error")
    assert seen and all(s["cudnn_benchmark"] and s["cudnn_deterministic"] for s in seen)
    assert all(s["on"] and s["autocast"] == torch.bfloat16 for s in seen)
    assert {k: row[k] for k in ("precision", "dtype", "autocast_dtype")} == {
        "precision": "bf16", "dtype": "float32", "autocast_dtype": "bfloat16",
    }  # fmt: skip
    assert (row["cudnn_benchmark"], row["cudnn_deterministic"]) == (True, True)
    assert (row["matmul_tf32"], row["cudnn_tf32"]) == (False, False)
    assert row["float32_matmul_precision"] == "highest"
    assert capture_flags() == before  # restored after the cell


def test_a_tf32_cell_on_the_cpu_is_a_skipped_row_with_the_reason() -> None:
    (cell,) = cells({"precision": "tf32"}, **RUN)
    row = run_cell(cell, torch.device("cpu")).row
    assert row["status"] == "skipped" and row["precision"] == "tf32"
    assert "tf32 is CUDA only" in row["error"]


def test_a_suite_setting_the_flags_changes_what_the_rows_and_manifest_record(
    tmp_path: Path,
) -> None:
    """Cells in their own processes (the default isolation): the rows' flags are read back from
    torch inside each cell process; this test process never sets them."""
    from memcomp.exec.api import run_suite

    suite = copy.deepcopy(SUITE)
    suite.update(name="flags", **RUN)
    suite["train"].update(meta_batch=1, val_episodes=1)
    suite["learners"] = [
        {"name": "mrml", "inner_steps": 1, "cg_steps": 1},
        {"name": "mrml", "inner_steps": 1, "cg_steps": 1,
         "train": {"cudnn_benchmark": True, "cudnn_deterministic": True, "precision": "bf16"}},
    ]  # fmt: skip
    path = tmp_path / "flags.yaml"
    path.write_text(json.dumps(suite))
    before = capture_flags()
    folder, _ = run_suite(path, tmp_path / "out", device="cpu", isolation="process")
    assert capture_flags() == before
    runs = pd.read_csv(folder / "runs.csv")
    assert runs["status"].tolist() == ["ok", "ok"]
    cols = ["precision", "cudnn_benchmark", "cudnn_deterministic", "autocast_dtype"]
    assert runs[cols].values.tolist() == [
        ["float32", False, False, "none"],
        ["bf16", True, True, "bfloat16"],
    ]
    assert runs["cudnn_tf32"].tolist() == [False, False]  # float32 means IEEE float32
    manifest = json.loads((folder / "manifest.json").read_text())
    planned = [manifest["precision"][cid] for cid in runs["cell_id"]]
    assert [(p["precision"], p["cudnn_benchmark"], p["autocast_dtype"]) for p in planned] == [
        ("float32", False, "none"),
        ("bf16", True, "bfloat16"),
    ]
