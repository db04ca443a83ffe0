"""Atomic file writes: write to a temporary file in the target's folder, fsync, then rename.

A reader (or a killed process) never sees a half-written file. :func:`dangling_link_problem`:
an output path through a symbolic link to nothing, said in one line before anything is written.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` (``mode`` "w" or "wb"); rename it onto ``path``.

    The parent folder is created if needed. The file keeps the mode of the file it replaces
    (a new file gets the usual ``0o666 & ~umask``, not ``mkstemp``'s private 0o600). On any error
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(path: Path) -> int:
    """Remove the temporary files of ``path`` that a killed :func:`atomic_open` left behind
    (hidden ``.<name>.*.tmp`` siblings); returns how many. Call it only where no other process
    is writing ``path`` at the same time."""
    path = Path(path)
    n = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def dangling_link_problem(path: Path, option: str = "--out", new: bool = False) -> str | None:
    """Why ``path`` cannot be created when it, or a folder above it, is a symbolic link to
    something that does not exist (``mkdir`` would fail with FileExistsError); else None.
    ``new``: ``path`` must not exist (the fix is not to create the link's target)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            fix = "" if new and p == path else "create that folder, "
            return (
                f"{p} is a symbolic link to {os.readlink(p)}, which does not exist; {fix}"
                f"remove the link, or pass another {option}"
            )
    return None
