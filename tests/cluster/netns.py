"""Private network namespaces for the cluster tests: only loopback exists inside.

The NETWORK RULE of these tests: every Ray/SLURM daemon and every client of it runs inside a
namespace made by :func:`netns_command` (``unshare -n``, then ``ip link set lo up`` and the extra
loopback address ``127.0.0.2`` that slurmctld needs), so nothing can reach another address.
Processes are only ever ended by PID, and only those inside our own namespace
(:func:`end_namespace_processes`), never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SETUP = 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$@"'


def netns_problem() -> str | None:
    """Why a private network namespace cannot be made here (None when it can)."""
    if not sys.platform.startswith("linux"):
        return "cluster tests need Linux network namespaces"
    if os.geteuid() != 0:
        return "cluster tests need root for `unshare -n` (run them as root, as .ci/run does)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"cluster tests need the `{tool}` command (util-linux / iproute2)"
    probe = subprocess.run(
        netns_command([sys.executable, __file__]), capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0 or probe.stdout.split() != ["lo"]:
        return f"`unshare -n` does not give a loopback-only namespace here: {probe.stderr.strip()}"
    return None


def netns_command(argv: list[str], private_dirs: tuple[str, ...] = ()) -> list[str]:
    """``argv`` run inside a new private network namespace with loopback up.

    ``private_dirs`` (e.g. munge's ``/run/munge``) get an empty tmpfs in a private mount
    namespace too, so that sockets kept there cannot meet the host's daemons.
    """
    if not private_dirs:
        return ["unshare", "-n", "--", "sh", "-c", SETUP, "sh", *argv]
    mounts = " && ".join(f"mkdir -p {d} && mount -t tmpfs tmpfs {d}" for d in private_dirs)
    return ["unshare", "-n", "-m", "--propagation", "private", "--", "sh", "-c",
            f"{mounts} && {SETUP}", "sh", *argv]  # fmt: skip


def network_interfaces() -> list[str]:
    """Interfaces of this process's network namespace (``/sys/class/net`` shows the host's)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def assert_loopback_only() -> None:
    """Refuse to start cluster daemons anywhere but in a loopback-only namespace."""
    interfaces = network_interfaces()
    if interfaces != ["lo"]:
        raise RuntimeError(
            f"not inside a private network namespace (interfaces: {interfaces}); "
            "run through tests/cluster/netns.py's netns_command"
        )


def _netns_id(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def namespace_pids() -> list[int]:
    """PIDs of the other processes in this network namespace (all of them started by us)."""
    mine, me = _netns_id("self"), os.getpid()
    keep = {me, *_ancestors(me)}
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in keep and _netns_id(entry.name) == mine:
            pids.append(int(entry.name))
    return pids


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def end_namespace_processes(grace: float = 5.0) -> None:
    """TERM, then KILL, every process left in this (private) namespace, by PID."""
    assert_loopback_only()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = namespace_pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and namespace_pids():
            time.sleep(0.1)
        if not namespace_pids():
            return


if __name__ == "__main__":
    print(" ".join(network_interfaces()))
