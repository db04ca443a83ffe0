"""Issue 13 (beyond the list): ``check --update`` on a read-only budget file is refused (exit 2)
before anything is measured, instead of measuring for minutes and then failing to write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_budgets import TINY, FakeMeasure, quiet, write
from test_faults import tmpfs

from memcomp.budgets import run_check
from memcomp.errors import InputError


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to mount tmpfs")
def test_update_on_a_read_only_file_system_is_refused_first(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as disk:
        path = write(disk, {"defaults": TINY, "budgets": [{"learner": {"name": "mrml"},
                                                           "limit_mb": 10}]})  # fmt: skip
        before = path.read_text()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        fake = FakeMeasure({"mrml": 9.0})
        with pytest.raises(InputError, match="cannot --update: .* is not writable") as info:
            run_check(path, update=True, device="cpu", console=quiet(), measure=fake)
        assert info.value.exit_code == 2 and fake.calls == []  # refused before measuring
        assert path.read_text() == before
        assert run_check(path, device="cpu", console=quiet(), measure=fake) == 0  # checking works
