"""config/cells.py: the one cell serialisation, the one label function, where a cell is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_suite import MAML, MRML, fake_components, valid_suite

from memcomp.config import Cell, Component, from_json, label, suite_from_dict, to_json
from memcomp.config.settings import Setting, TestConfig, TrainConfig


@pytest.fixture(autouse=True)
def _fakes():
    with fake_components():
        yield


def cell(**over) -> Cell:
    base = dict(
        suite="s",
        dataset=Component("omniglot", {"image_size": 28, "root": Path("/data")}),
        setting=Setting(ways=3),
        backbone=Component("conv4", {"hidden": 8}),
        learner=Component("mrml", {"inner_steps": 3, "l2": 0.1}),
        train=TrainConfig(lr=0.01, checkpoint_every=5),
        test=TestConfig(episodes=10),
        seed=2,
    )
    return Cell(**{**base, **over})


def test_to_json_is_json_and_round_trips_with_the_same_id() -> None:
    c = cell()
    data = json.loads(json.dumps(to_json(c), default=str))
    back = from_json(data)
    assert back.id == c.id and back.learner == c.learner and back.train == c.train
    assert data["id"] == c.id and data["learner"] == {"name": "mrml", "params": c.learner.params}


def test_from_json_refuses_a_changed_cell() -> None:
    data = to_json(cell())
    data["seed"] = 3
    with pytest.raises(ValueError, match="cell id changed"):
        from_json(data)


def test_id_ignores_checkpointing_and_origin_but_not_results() -> None:
    c = cell()
    assert cell(train=TrainConfig(lr=0.01)).id == c.id  # checkpoint_every: how, not what
    assert cell(origin={"learners": ("learners", 4)}) == c
    assert cell(seed=3).id != c.id and cell(test=TestConfig(episodes=11)).id != c.id


def test_label_is_the_one_format() -> None:
    assert label("maml") == "maml"
    assert label("maml", {"inner_steps": 5, "inner_lr": 0.4}) == "maml(inner_lr=0.4,inner_steps=5)"
    assert label("mrml", {"name": "mrml", "k": 1}, skip=("name",)) == "mrml(k=1)"
    c = cell()
    assert c.learner.label() == label("mrml", c.learner.params)
    assert c.label().startswith("mrml(cg_steps=20,cg_tol=None,")  # defaults filled in
    assert c.label().endswith(
        ",warm_start=False) | omniglot 3w1s | conv4(blocks=4,hidden=8) | seed 2"
    )


def test_a_cell_holds_each_component_as_its_registered_model() -> None:
    from memcomp.backbones.params import Conv4Params
    from memcomp.data.params import OmniglotParams
    from memcomp.learners.params import MrmlParams

    c = cell()
    assert type(c.learner.model) is MrmlParams and c.learner.model.l2 == 0.1
    assert type(c.dataset.model) is OmniglotParams and c.dataset.model.root == Path("/data")
    assert type(c.backbone.model) is Conv4Params and c.backbone.params == {"hidden": 8, "blocks": 4}
    assert c.learner.params == c.learner.model.model_dump()  # values as a plain dict
    back = from_json(json.loads(json.dumps(to_json(c), default=str)))
    assert type(back.learner.model) is MrmlParams and back.learner == c.learner  # typed again
    with pytest.raises(ValueError, match="cg_steps"):  # a hand-made cell is validated too
        cell(learner=Component("mrml", {"cg_steps": -1}))


def test_cells_know_where_they_are_written() -> None:
    cells = suite_from_dict(valid_suite()).cells
    assert [c.learner.name for c in cells] == [MAML, MRML, MRML]
    assert [c.where("learners") for c in cells] == [("learners", 0), ("learners", 1)] + [
        ("learners", 1)
    ]
    assert cells[0].where("datasets") == ("datasets", 0) and cells[0].where("seeds") == ("seeds", 0)
    assert cell().where("learners") == ("learners",)  # no origin: the axis itself
