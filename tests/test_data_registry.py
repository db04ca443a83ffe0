"""Dataset and backbone registries: importable without torch, and the checks that need no data
(what a dataset can supply, which images a backbone accepts) agree with loading and building."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memcomp.backbones import BACKBONES, backbone_input_problem, build_backbone
from memcomp.data import DATASETS, DataSupply, dataset_supply, load_dataset, setting_problems
from memcomp.data.params import OmniglotParams, RealParams
from memcomp.errors import DataError, UnknownNameError

BUILT_IN = {"cifar-fs", "fc100", "glyphs", "mini-imagenet", "omniglot", "synthetic"}
BUILT_IN |= {"tiered-imagenet"}


def test_registries_and_params_import_without_torch():
    code = """
import json, sys
from memcomp.backbones import BACKBONES, backbone_input_problem
from memcomp.data import DATASETS, dataset_supply
out = {
    "datasets": {e.name: sorted(e.params.model_json_schema()["properties"]) for e in DATASETS},
    "backbones": {e.name: sorted(e.params().model_dump()) for e in BACKBONES},
    "supply": {e.name: dataset_supply(e.name, {}) is not None for e in DATASETS},
    "too_small": backbone_input_problem("conv4", {}, (3, 8, 8)) is not None,
    "torch": "torch" in sys.modules,
}
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(run.stdout)
    assert out["torch"] is False
    assert set(out["datasets"]) == BUILT_IN and set(out["backbones"]) == {"conv4", "resnet12"}
    assert "image_size" in out["datasets"]["glyphs"] and "hidden" in out["backbones"]["conv4"]
    assert all(out["supply"].values()) and out["too_small"] is True


def test_every_built_in_declares_what_it_supplies():
    want = {
        "cifar-fs": ({"train": 64, "val": 16, "test": 20}, 600, 3, 32),
        "fc100": ({"train": 60, "val": 20, "test": 20}, 600, 3, 32),
        "mini-imagenet": ({"train": 64, "val": 16, "test": 20}, 600, 3, 84),
        "tiered-imagenet": ({"train": 351, "val": 97, "test": 160}, 1300, 3, 84),
        "omniglot": ({"train": 1200, "val": 211, "test": 212}, 20, 1, 28),
        "synthetic": ({"train": 64, "val": 16, "test": 20}, 30, 3, 84),
        "glyphs": ({"train": 170, "val": 57, "test": 56}, 20, 1, 28),
    }
    for name, (classes, per_class, channels, size) in want.items():
        assert dataset_supply(name, {}) == DataSupply(classes, per_class, channels, size), name
    rot = dataset_supply("omniglot", {"rotations": True, "image_size": 20})
    assert rot.classes == {"train": 4800, "val": 844, "test": 848} and rot.image_size == 20
    assert dataset_supply("glyphs", {"fonts": "system"}).classes is None  # unknown: no check
    assert dataset_supply("glyphs", {"min_fonts": 1000}).classes == {
        "train": 0,
        "val": 0,
        "test": 0,
    }
    with pytest.raises(UnknownNameError):
        dataset_supply("cifar", {})


def test_real_params_name_their_spec_and_standard():
    for entry in DATASETS:
        if issubclass(entry.params, RealParams):
            spec = entry.params.spec()
            assert spec.name == entry.name
            std = entry.params().standard()
            assert dataset_supply(entry.name, {}).classes == std.classes
    assert OmniglotParams(rotations=True).standard().per_class == 20


def test_setting_problems_name_split_and_fix():
    supply = DataSupply({"train": 10, "val": 4, "test": 5}, 8, 1, 28)
    assert setting_problems("d", supply, ways=4, shots=3, queries=5) == []
    probs = setting_problems("d", supply, ways=5, shots=4, queries=5)
    assert probs == [
        "dataset 'd': split 'val' has at most 4 classes, fewer than ways=5; lower `ways` in the "
        "suite's settings",
        "dataset 'd': classes have at most 8 images, fewer than shots+queries=9; lower shots or "
        "queries",
    ]
    assert setting_problems("d", None, ways=1000, shots=1000, queries=1000) == []
    assert setting_problems("d", DataSupply(None, None, None, None), 1000, 1000, 1000) == []


@pytest.mark.parametrize(
    ("ways", "shots", "queries"), [(5, 1, 2), (6, 1, 2), (5, 2, 2), (3, 4, 1), (7, 1, 1)]
)
def test_setting_problems_agree_with_the_loaded_dataset(ways, shots, queries):
    params = {"image_size": 8, "channels": 1, "train_classes": 7, "val_classes": 5}
    params |= {"test_classes": 6, "images_per_class": 4}
    problems = setting_problems(
        "synthetic", dataset_supply("synthetic", params), ways, shots, queries
    )
    data = load_dataset("synthetic", params)
    assert tuple(data.split("train").image_shape) == (1, 8, 8)
    try:
        data.check_setting(ways, shots, queries)
    except DataError:
        assert problems
    else:
        assert not problems


@pytest.mark.parametrize("name", ["conv4", "resnet12"])
@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_backbone_input_problem_agrees_with_building(name, blocks):
    params = {"blocks": blocks, "hidden": 4} if name == "conv4" else {"widths": [4] * blocks}
    assert BACKBONES.get(name).params(**params).min_image_size() == 2**blocks
    for side in (2**blocks - 1, 2**blocks, 2**blocks + 1):
        problem = backbone_input_problem(name, params, (1, side, side + 3))
        try:
            build_backbone(name, params, (1, side, side + 3))
        except ValueError:
            assert problem is not None and f"at least {2**blocks}x{2**blocks}" in problem
        else:
            assert problem is None
    assert backbone_input_problem(name, params, (1, 64, 2**blocks - 1)) is not None


def test_plugins_still_register_with_the_decorator():
    import fake_learners  # noqa: F401  (tests/fake_learners.py registers fake datasets)

    # an entry registered outside memcomp records where it comes from (`memcomp list`)
    assert "fake-tiny" in DATASETS and DATASETS.get("fake-tiny").source == "module fake_learners"
    assert DATASETS.get("glyphs").source == "built-in"
    assert dataset_supply("fake-tiny", {}) is None  # declares nothing: no check
