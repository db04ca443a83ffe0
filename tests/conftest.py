"""Test-wide settings: caches in a temporary folder, deterministic and quiet plotting, fixed
property-test examples in CI."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")

# CI runs the property tests on a fixed set of examples (derandomised, no example database), so a
# submission's CI result does not depend on the draw; locally each run draws new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Glyph builds and decoded datasets go to a temporary cache unless MEMCOMP_CACHE is set."""
    if "MEMCOMP_TEST_CACHE" in os.environ:
        os.environ["MEMCOMP_CACHE"] = os.environ["MEMCOMP_TEST_CACHE"]
    else:
        os.environ["MEMCOMP_CACHE"] = str(tmp_path_factory.mktemp("memcomp-cache"))
