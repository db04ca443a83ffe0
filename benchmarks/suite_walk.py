"""The walk of a suite and of one learner parameter from ``memcomp run`` to the learner, traced.

``python benchmarks/suite_walk.py [--isolation inline|process] [--json FILE]`` runs a one-cell
suite (synthetic images, conv4, ``mrml`` with ``cg_steps: 7``) through ``memcomp run`` with a
profiler hook and prints the walk: every **stop**, i.e. a call from one memcomp file into a
function of another memcomp file whose arguments (``self`` / ``cls`` left out) carry the value,
in the order they happen, until the constructor of the learner that trains receives the value
(the last outermost ``__init__`` under ``memcomp/learners/`` before the first meta-step; a
``super().__init__`` inside it is part of that stop). Repeated calls of one function in a row are
one stop. A **return** is a stop in a file the walk had already been in and
left (the previous stop is in another file); "done" (issue 19) is a walk without returns.

Two values are followed: **the suite** (its path, text, raw mapping, validated model,
``Suite``, a plan holding it, its cells, a cell) and **cg_steps** (anything above, plus any
mapping, model or object holding a ``cg_steps`` key or field). With ``--isolation process`` the
cell child process is traced too (through a ``sitecustomize`` on its ``PYTHONPATH``) and its
stops follow the parent's. The tool only reads code objects and arguments, so the same script
measures any checkout: ``PYTHONPATH=/path/to/checkout python benchmarks/suite_walk.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARAM = "cg_steps"
SUITE = """\
name: walk
seeds: [0]
device: cpu
datasets: [{name: synthetic, image_size: 8, channels: 1, train_classes: 5, val_classes: 5,
            test_classes: 5, images_per_class: 4}]
settings: [{ways: 2, shots: 1, queries: 1}]
backbones: [{name: conv4, hidden: 2, blocks: 1}]
train: {iterations: 1, meta_batch: 1, eval_every: 1, val_episodes: 1}
test: {episodes: 1}
learners:
  - {name: mrml, inner_steps: 1, cg_steps: 7}
"""
END = "meta_step"  # the first meta-step: the learner that trains exists by then


def _carries(
    obj: Any, hit: Callable[[Any], bool], depth: int = 0, seen: set[int] | None = None
) -> bool:
    """Whether ``obj`` holds something ``hit`` recognises (containers, models, dataclasses and
    memcomp objects searched a few levels deep)."""
    if hit(obj):
        return True
    if depth > 6 or isinstance(obj, (str, bytes, int, float, bool, type(None), Path)):
        return False
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    items: list[Any]
    if isinstance(obj, dict):
        items = list(obj.values())[:50]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)[:50]
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
    elif hasattr(type(obj), "model_fields") and not isinstance(obj, type):
        items = [getattr(obj, k, None) for k in type(obj).model_fields]
    elif type(obj).__module__.startswith("memcomp") and hasattr(obj, "__dict__"):
        items = list(vars(obj).values())
    else:
        return False
    return any(_carries(x, hit, depth + 1, seen) for x in items)


def _suite_hit(path: str) -> Callable[[Any], bool]:
    def hit(obj: Any) -> bool:
        if isinstance(obj, (str, Path)):
            return str(obj) == path or (isinstance(obj, str) and "learners:" in obj)
        if isinstance(obj, dict):
            return "learners" in obj and "name" in obj  # the raw suite mapping
        name = type(obj).__name__
        return name in ("Cell", "Suite", "Source") or (
            hasattr(obj, "learners") and hasattr(obj, "name") and not isinstance(obj, type)
        )

    return hit


def _param_hit(path: str) -> Callable[[Any], bool]:
    suite = _suite_hit(path)

    def hit(obj: Any) -> bool:
        if suite(obj):
            return True
        if isinstance(obj, dict):
            return PARAM in obj
        fields = getattr(type(obj), "model_fields", None)
        return isinstance(fields, dict) and PARAM in fields and not isinstance(obj, type)

    return hit


class Tracer:
    """Records the stops of both values (see the module docstring)."""

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        self.hits = {"suite": _suite_hit(path), PARAM: _param_hit(path)}
        self.stops: dict[str, list[dict[str, Any]]] = {k: [] for k in self.hits}
        self.ended = False

    def rel(self, filename: str) -> str | None:
        return os.path.relpath(filename, self.root) if filename.startswith(self.root) else None

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call" or self.ended:
            return
        code = frame.f_code
        callee = self.rel(code.co_filename)
        if callee is None or not callee.startswith("memcomp"):
            return
        if code.co_name == END:
            self.ended = True
            return
        back = frame.f_back
        caller = self.rel(back.f_code.co_filename) if back is not None else None
        if caller == callee:
            return
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        args = [frame.f_locals.get(n) for n in names if n not in ("self", "cls")]
        for key, hit in self.hits.items():
            if any(_carries(a, hit) for a in args):
                qual = getattr(code, "co_qualname", code.co_name)
                stop = {"file": callee, "function": qual, "line": code.co_firstlineno,
                        "t": time.time_ns()}  # fmt: skip
                stops = self.stops[key]
                if not stops or (stops[-1]["file"], stops[-1]["function"]) != (callee, qual):
                    stops.append(stop)


def constructed_at(stops: list[dict[str, Any]]) -> int:
    """When the learner that trains was constructed: the time of the last outermost learner
    ``__init__`` stop (one not called from another learner ``__init__``)."""
    times = [
        s["t"] for i, s in enumerate(stops)
        if s["file"].startswith("memcomp/learners/") and s["function"].endswith("__init__")
        and not (i and stops[i - 1]["function"].endswith("__init__")
                 and stops[i - 1]["file"].startswith("memcomp/learners/"))
    ]  # fmt: skip
    if not times:
        raise RuntimeError("the trace never reached a learner constructor")
    return times[-1]


def summarise(stops: list[dict[str, Any]], end: int) -> dict[str, Any]:
    """Stops up to ``end``, files, returns (stops into a file left earlier), and the walk."""
    stops = [s for s in stops if s["t"] <= end]
    seen: list[str] = []
    returns = []
    for i, s in enumerate(stops):
        if s["file"] in seen and stops[i - 1]["file"] != s["file"]:
            returns.append(i)
        if s["file"] not in seen:
            seen.append(s["file"])
    return {"stops": len(stops), "files": len(seen), "returns": len(returns),
            "walk": [{**s, "return": i in returns} for i, s in enumerate(stops)]}  # fmt: skip


CHILD_HOOK = """
import json, os, sys
sys.path.insert(0, {tool!r})
import suite_walk
_t = suite_walk.Tracer({root!r}, {path!r})
sys.setprofile(_t)
import atexit
def _dump():
    sys.setprofile(None)
    with open({out!r}, "w") as f:
        json.dump(_t.stops, f)
atexit.register(_dump)
_exit = os._exit
def _os_exit(code):
    _dump()
    _exit(code)
os._exit = _os_exit
"""


def trace(isolation: str) -> dict[str, Any]:
    """Run the walk suite through ``memcomp run`` and return both walks, summarised."""
    import memcomp
    from memcomp.cli import app

    root = str(Path(memcomp.__file__).resolve().parent.parent) + os.sep
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "walk.yaml"
        suite.write_text(SUITE)
        tracer = Tracer(root, str(suite))
        child_out = Path(tmp) / "child.json"
        if isolation == "process":  # the cell child traces itself (sitecustomize)
            hook = Path(tmp) / "hook"
            hook.mkdir()
            tool = str(Path(__file__).resolve().parent)
            (hook / "sitecustomize.py").write_text(textwrap.dedent(CHILD_HOOK.format(
                tool=tool, root=root, path=str(suite), out=str(child_out))))  # fmt: skip
            os.environ["PYTHONPATH"] = os.pathsep.join(
                [str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        args = ["run", str(suite), "--out", str(Path(tmp) / "out"), "--device", "cpu",
                "--isolation", isolation]  # fmt: skip
        sys.setprofile(tracer)
        try:
            app(args, standalone_mode=False)
        finally:
            sys.setprofile(None)
        stops = tracer.stops
        if isolation == "process" and not child_out.exists():
            raise RuntimeError(f"the cell child wrote no trace ({child_out})")
        if isolation == "process":
            child = json.loads(child_out.read_text())
            stops = {
                k: sorted(v + child.get(k, []), key=lambda s: s["t"]) for k, v in stops.items()
            }
    end = constructed_at(stops[PARAM])
    return {k: summarise(v, end) for k, v in stops.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isolation", choices=("inline", "process"), default="inline")
    ap.add_argument("--json", type=Path, help="also write the walks here")
    args = ap.parse_args()
    walks = trace(args.isolation)
    for key, w in walks.items():
        print(f"\n== {key}: {w['stops']} stops in {w['files']} files, {w['returns']} returns")
        for i, s in enumerate(w["walk"], 1):
            mark = "  <- return" if s["return"] else ""
            print(f"{i:3d}. {s['file']}:{s['line']} {s['function']}{mark}")
        for s in w["walk"]:
            s.pop("t", None)
    if args.json:
        args.json.write_text(json.dumps(walks, indent=1))


if __name__ == "__main__":
    main()
