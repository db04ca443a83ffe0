"""A real Ray cluster on this machine: a head and worker nodes of 1 CPU each, all on loopback.

Only to be used inside a private network namespace (:mod:`netns`); every node is a
``ray start --block`` process whose PID we keep, so a node is stopped (or killed mid-cell) by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from netns import assert_loopback_only, cmdline, descendants, end_namespace_processes

PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"
# A dead node is noticed within about 4 s (defaults: 3 s x 5 checks); not faster, since a busy
# 2-core machine must not miss heartbeats of live nodes.
FAST_FAILURE_DETECTION = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
}


def ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class RayCluster:
    temp_dir: Path
    log_dir: Path
    env: dict[str, str]
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_node(self, name: str, head: bool = False, cpus: int = 1) -> None:
        common = [
            "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--num-gpus=0",
            "--disable-usage-stats", "--object-store-memory=80000000",
            f"--temp-dir={self.temp_dir}", f"--resources={{\"{name}\": 1}}", "--block",
        ]  # fmt: skip
        if head:
            args = ["--head", f"--port={PORT}", "--include-dashboard=false"]
        else:
            args = [f"--address={ADDRESS}"]
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - kept by Popen
        self.nodes[name] = subprocess.Popen(
            [ray_bin(), "start", *args, *common], env=self.env, stdout=log, stderr=log
        )

    def wait_started(self, name: str, timeout: float = 120.0) -> None:
        """Wait until node ``name``'s ``ray start`` says the runtime started (or it died)."""
        log, proc = self.log_dir / f"{name}.log", self.nodes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Ray node {name} did not start: see {log}")

    def raylet_pid(self, name: str) -> int | None:
        """PID of the raylet of node ``name`` (the process that is the node)."""
        for pid in descendants(self.nodes[name].pid):
            if "raylet" in cmdline(pid).split(" ")[0]:
                return pid
        return None

    def node_running(self, marker: str) -> str | None:
        """Name of the worker node one of whose processes' command line contains ``marker``."""
        for name, proc in self.nodes.items():
            if name == "head":
                continue
            if any(marker in cmdline(pid) for pid in descendants(proc.pid)):
                return name
        return None

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's processes by PID (raylet first): the node dies as a machine would."""
        pids = descendants(self.nodes[name].pid)
        raylet = self.raylet_pid(name)
        for pid in [raylet, *pids, self.nodes[name].pid]:
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.nodes[name].wait(timeout=30)


@contextlib.contextmanager
def ray_cluster(
    root: Path, workers: int = 2, env: dict[str, str] | None = None, head_cpus: int = 1
) -> Iterator[RayCluster]:
    """Head + ``workers`` nodes (named ``head``, ``w1``, ``w2``...); everything ended by PID."""
    assert_loopback_only()
    full_env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0",
                **FAST_FAILURE_DETECTION}  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths live under its temp dir and must stay short (AF_UNIX: 107 bytes).
    temp = Path(tempfile.mkdtemp(prefix="mcray-", dir="/tmp"))
    cluster = RayCluster(temp, root, full_env)
    try:
        cluster.start_node("head", head=True, cpus=head_cpus)
        cluster.wait_started("head")
        for i in range(1, workers + 1):  # one at a time: nodes starting together time out
            cluster.start_node(f"w{i}")
            cluster.wait_started(f"w{i}")
        yield cluster
    finally:
        for proc in reversed(list(cluster.nodes.values())):
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in cluster.nodes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        end_namespace_processes()
        shutil.rmtree(temp, ignore_errors=True)
