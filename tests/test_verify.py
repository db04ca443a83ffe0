"""``memcomp verify`` catches planted bugs (each a small subclass of a built-in learner), and the
command prints its table and exits 1 on a failure."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from typer.testing import CliRunner

from memcomp.backbones.norm import _GROUPS, TaskBatchNorm2d
from memcomp.cli import app
from memcomp.cli.app import console
from memcomp.learners.anil import Anil
from memcomp.learners.itdbio import ItdBio
from memcomp.learners.mrml import Mrml
from memcomp.verify import verify


def by_name(checks: list) -> dict:
    return {c.name: c for c in checks}


class SignFlipMrml(Mrml):
    """Bug: ``f + <dg/dphi, v>`` instead of ``f - <dg/dphi, v>`` (the CG solution negated)."""

    def solve(self, *args, **kwargs):  # noqa: ANN002, ANN003
        res = super().solve(*args, **kwargs)
        return dataclasses.replace(res, x=-res.x)


class WrongRepeatBatchNorm(TaskBatchNorm2d):
    """Bug: affine weights repeated task-major (``repeat_interleave``) instead of per task."""

    def forward(self, x: Tensor) -> Tensor:
        groups = _GROUPS.get()
        if groups is None or groups.tasks == 1 or groups.layout != "interleaved":
            return super().forward(x)
        b, (rows, c, h, w) = groups.tasks, x.shape
        folded = x.reshape(rows // b, b * c, h, w)
        weight, bias = self.weight.repeat_interleave(b), self.bias.repeat_interleave(b)
        out = F.batch_norm(folded, None, None, weight, bias, True, 0.0, self.eps)
        return out.reshape(rows, c, h, w)


class WrongRepeatAnil(Anil):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        for m in self.modules():
            if isinstance(m, TaskBatchNorm2d):
                m.__class__ = WrongRepeatBatchNorm


class NoL2WhenBatchedItdBio(ItdBio):
    """Bug: the batched path forgets the ``(l2/2)||phi||^2`` regulariser of the head steps."""

    batched_now = False

    @property
    def l2(self) -> float:
        return 0.0 if self.batched_now else float(self.params.l2)

    def inner(self, chunk):  # noqa: ANN001, ANN201
        self.batched_now = chunk.batched
        return super().inner(chunk)


def test_sign_flip_in_the_hypergradient_is_caught() -> None:
    checks = by_name(verify("mrml", factory=SignFlipMrml))
    limit = checks["converges to exact hypergradient"]
    assert limit.failed and limit.error > 0.1
    assert not checks["sequential == batched == chunked"].failed  # consistent, but wrong


def test_wrong_batchnorm_repeat_in_the_batched_path_is_caught() -> None:
    checks = by_name(verify("anil", factory=WrongRepeatAnil))
    modes = checks["sequential == batched == chunked"]
    assert modes.failed and modes.error > 1e-3
    assert not checks["meta-gradient vs finite differences"].failed  # the default path is exact


def test_missing_regulariser_in_one_path_is_caught() -> None:
    checks = by_name(verify("itd-bio", factory=NoL2WhenBatchedItdBio))
    modes = checks["sequential == batched == chunked"]
    assert modes.failed and modes.error > 1e-6


def test_a_learner_that_syncs_in_its_inner_loop_is_caught() -> None:
    class Syncing(Anil):
        def inner(self, chunk):  # noqa: ANN001, ANN201
            w, b = super().inner(chunk)
            if float(w.detach().abs().max()) > 1e9:  # a host read
                raise RuntimeError
            return w, b

    check = by_name(verify("anil", factory=Syncing))["no host sync in the inner loop"]
    assert check.failed and check.error >= 1


def test_verify_command_table_and_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    # a wide console whatever ran before in this process (COLUMNS alone is not always read)
    monkeypatch.setattr(console, "_width", 160)
    runner = CliRunner()
    res = runner.invoke(app, ["verify", "itd-bio"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "meta-gradient vs finite differences" in res.output and "itd-bio: ok" in res.output
    res = runner.invoke(app, ["verify", "itd-biox"])
    assert res.exit_code == 2 and "did you mean 'itd-bio'" in res.output


def test_a_crashing_learner_fails_its_checks_with_the_reason() -> None:
    class Crashing(Anil):
        def hypergrad(self, chunk, state):  # noqa: ANN001, ANN201
            raise ValueError("planted")

    checks = verify("anil", factory=Crashing)
    failed = [c for c in checks if c.failed]
    assert failed and all("ValueError: planted" in c.note for c in failed)
    assert torch.get_num_threads() >= 1


class StockBatchNormNet(torch.nn.Sequential):
    """A backbone of stock PyTorch modules (nn.BatchNorm2d with running statistics)."""

    def __init__(self) -> None:
        super().__init__(
            torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten()
        )
        self.feat_dim = 2 * 6 * 6


def test_stock_batchnorm_batched_gives_an_error_naming_the_fix() -> None:
    import pytest

    from memcomp.learners import build_learner
    from memcomp.verify.fixtures import make_tasks

    tasks = make_tasks()
    for name in ("maml", "fomaml", "imaml", "anil", "mrml"):
        learner = build_learner(
            name, {"inner_steps": 1, "execution": "batched"}, StockBatchNormNet(), 3
        ).double()
        with pytest.raises(ValueError, match="TaskBatchNorm2d"):
            learner.meta_backward(tasks)
        learner.params = learner.params.model_copy(update={"execution": "sequential"})
        assert torch.isfinite(learner.meta_backward(tasks).loss)
