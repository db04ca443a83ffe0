"""The cluster tests import their helpers from this folder, and share one local reference run."""

import sys
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]  # + tests/

from helpers_cluster import cluster_env, local_run, tiny_suite  # noqa: E402


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny cluster suite and its results folder from a local run (same seeds)."""
    root = tmp_path_factory.mktemp("cluster-ref")
    suite = tiny_suite(root / "suite.yaml")
    return suite, local_run(suite, root / "local", cluster_env(MEMCOMP_CACHE=str(root / "cache")))
