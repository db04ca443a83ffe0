"""Test-wide settings: caches in a temporary folder, deterministic and quiet plotting."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Glyph builds and decoded datasets go to a temporary cache unless MEMCOMP_CACHE is set."""
    if "MEMCOMP_TEST_CACHE" in os.environ:
        os.environ["MEMCOMP_CACHE"] = os.environ["MEMCOMP_TEST_CACHE"]
    else:
        os.environ["MEMCOMP_CACHE"] = str(tmp_path_factory.mktemp("memcomp-cache"))
