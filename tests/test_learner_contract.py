"""The contract every registered learner keeps, run over ``LEARNERS.names()`` (no hand-kept list)
through :func:`memcomp.verify.verify`, the same checks ``memcomp verify NAME`` runs (finite loss,
gradients exactly on the meta-parameters, determinism, mean over tasks and accumulation into
``.grad``, sequential == batched == chunked, finite differences for exact learners and the limit
of approximate ones, a badly scaled task, no host sync in the inner loop). The test-only plugin
learners (``fake_learners``) are imported first so the set of names does not depend on which test
modules ran before; installed plugins (entry points) are checked too.
"""

from __future__ import annotations

import subprocess
import sys

import fake_learners  # noqa: F401  (registers the test plugin learners)
import pytest

from memcomp.learners import LEARNERS
from memcomp.verify import verify

NAMES = LEARNERS.names()


def test_every_builtin_learner_is_covered():
    assert {"anil", "fomaml", "imaml", "itd-bio", "maml", "mrml"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str) -> None:
    checks = verify(name)
    failed = [f"{c.name}: {c.note} (error {c.error})" for c in checks if c.failed]
    assert not failed, failed
    exact = LEARNERS.get(name).factory.exact
    fd = next(c for c in checks if c.name.startswith(("meta-gradient vs", "error vs")))
    assert fd.status == ("pass" if exact else "approx")


def test_registry_and_params_load_without_torch():
    code = (
        "import sys, memcomp.learners as L; names = L.LEARNERS.names(); "
        "[L.LEARNERS.get(n).params() for n in names]; "
        "print(len(names), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, torch_loaded = out.stdout.split()
    assert int(count) >= 6 and torch_loaded == "False", out.stdout
