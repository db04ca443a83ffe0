"""``memcomp new learner NAME``: write a small installable plugin package (docs/extending.md).

The package registers its learner through an entry point (``memcomp.learners``), so once
installed (``pip install -e DIR``) every memcomp command and process sees it; its learner file has
the contract's hooks, its test calls :func:`memcomp.verify.verify`, and its suite runs it beside
``maml`` and ``mrml``. Importing this module does not import torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from memcomp.errors import InputError

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "memcomp-{name}"
version = "0.1.0"
description = "The {name} meta-learner as a memcomp plugin"
requires-python = ">=3.10"
dependencies = ["memcomp"]

# memcomp finds the learner through this entry point: `memcomp list learners` shows it
[project.entry-points."memcomp.learners"]
{name} = "{pkg}"

[tool.setuptools]
packages = ["{pkg}"]
"""

INIT = '''"""Registers the {name} learner (imported by memcomp through the package's entry point).

Only the parameter model lives here, so listing and validating suites does not import torch; the
learner class (``{pkg}/learner.py``) is imported on first use.
"""

from pydantic import Field

from memcomp.learners import LEARNERS, LearnerParams


class {cls}Params(LearnerParams):
    """Parameters of {name} (``inner_steps`` and ``inner_lr`` come from LearnerParams)."""

    l2: float = Field(0.01, ge=0, description="(l2/2)||head||^2 in the inner objective")


LEARNERS.register_lazy(
    "{name}", "{name}: K differentiable SGD steps on the head (edit me)", {cls}Params,
    "{pkg}.learner:{cls}",
)
'''

LEARNER = '''"""The {name} learner: adapt the head with K SGD steps, back-propagate through them.

The contract (docs/extending.md in memcomp): ``inner`` adapts one chunk of tasks (here one task:
no ``execution`` parameter, so tasks run one after another) and ``hypergrad`` returns the query
loss and the objective the driver back-propagates; the driver marks the memory phases, averages
over the meta-batch and adds into ``.grad``. ``memcomp verify {name}`` checks it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from memcomp.learners import Chunk, ChunkOut, Learner
from memcomp.types import Task


class {cls}(Learner):
    """Backbone and head initialisation meta-learned; the head adapted per task."""

    exact = True  # the meta-gradient is the exact derivative of meta_objective (the query loss)
    host_sync_free = True  # nothing in inner() reads a device value back to the host
    test_params = {{"inner_steps": 2, "inner_lr": 0.5}}  # tiny settings for memcomp verify

    def adapt(self, task: Task) -> tuple[Tensor, Tensor]:
        """K SGD steps on the support loss from the head init, keeping the graph."""
        p = self.params
        z = self.backbone(task.xs)
        w, b = self.head.weight, self.head.bias
        for _ in range(p.inner_steps):
            reg = 0.5 * p.l2 * (w.square().sum() + b.square().sum())
            loss = F.cross_entropy(F.linear(z, w, b), task.ys) + reg
            gw, gb = torch.autograd.grad(loss, (w, b), create_graph=True)
            w, b = w - p.inner_lr * gw, b - p.inner_lr * gb
        return w, b

    def inner(self, chunk: Chunk) -> tuple[Tensor, Tensor]:
        return self.adapt(chunk.tasks[0])

    def hypergrad(self, chunk: Chunk, state: tuple[Tensor, Tensor]) -> ChunkOut:
        task, (w, b) = chunk.tasks[0], state
        loss = F.cross_entropy(F.linear(self.backbone(task.xq), w, b), task.yq)
        return ChunkOut(loss=loss.detach(), objective=loss)

    def adapt_predict(self, task: Task) -> Tensor:
        with torch.enable_grad():
            w, b = self.adapt(task)
        with torch.no_grad():
            return F.linear(self.backbone(task.xq), w, b)
'''

TEST = '''"""The memcomp contract (memcomp verify) holds for {name}."""

from memcomp.verify import verify


def test_{pkg}_keeps_the_memcomp_contract() -> None:
    failed = [(c.name, c.note) for c in verify("{name}") if c.failed]
    assert not failed, failed
'''

SUITE = """# {name} beside maml and mrml: `memcomp run {folder}/suite.yaml`, then `memcomp report`
name: {name}-vs-builtins
seeds: [0]
datasets: [{{name: glyphs, image_size: 28}}]
settings: [{{ways: 5, shots: 1, queries: 15}}]
backbones: [{{name: conv4, hidden: 32}}]
train: {{iterations: 100, meta_batch: 4, eval_every: 25, val_episodes: 100}}
test: {{episodes: 200}}
learners:
  - {{name: {name}, inner_steps: 5, inner_lr: 0.4}}
  - {{name: maml, inner_steps: 5, inner_lr: 0.4}}
  - {{name: mrml, inner_steps: 20, cg_steps: 20, l2: 0.01}}
"""

README = """# memcomp-{name}

A memcomp plugin learner. `pip install -e .` then `memcomp verify {name}` and
`memcomp run suite.yaml`. Edit `{pkg}/learner.py`; the contract is memcomp's docs/extending.md.
"""

NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def package_name(name: str) -> str:
    """``memcomp_<name>``: not ``<name>``, which the package folder itself is called (a folder
    ``mine/`` in the working directory would shadow an installed package ``mine``)."""
    return "memcomp_" + name.replace("-", "_")


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def new_learner(name: str, folder: Path) -> list[Path]:
    """Write the plugin package of learner ``name`` into ``folder`` (must not exist or be empty);
    returns the files written."""
    if not NAME.fullmatch(name):
        raise InputError(
            f"learner name {name!r}: use lower-case letters, digits and '-', starting with a letter"
        )
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder}: already exists and is not empty; choose another --dir")
    pkg = package_name(name)
    fields = {"name": name, "pkg": pkg, "cls": class_name(name), "folder": folder}
    files = {
        "pyproject.toml": PYPROJECT,
        f"{pkg}/__init__.py": INIT,
        f"{pkg}/learner.py": LEARNER,
        f"tests/test_{pkg}.py": TEST,
        "suite.yaml": SUITE,
        "README.md": README,
    }
    written = []
    for rel, template in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields))
        written.append(path)
    return written
