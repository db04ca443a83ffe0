"""A real single-node SLURM cluster with accounting, all on loopback, for the executor tests.

munged (own socket), MariaDB (TCP on 127.0.0.1 inside the namespace), slurmdbd, slurmctld and
slurmd run in the foreground as children of this process; their PIDs are kept and they are
stopped in reverse order, then every process left in the (private) namespace is ended by PID.
Only to be used inside a private network namespace (:mod:`netns`) with ``127.0.0.2`` on ``lo``.
Clients find the cluster through ``SLURM_CONF`` (set in :attr:`SlurmCluster.env`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from netns import assert_loopback_only, end_namespace_processes

CLUSTER = "mc"
MUNGE_RUN = "/run/munge"  # munged's socket: a tmpfs of our own mount namespace
SLURM_CONF = """\
ClusterName={cluster}
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=2
MinJobAge=600
MaxArraySize=1000
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
SLURMDBD_CONF = """\
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile={d}/slurmdbd.pid
LogFile={d}/slurmdbd.log
"""
PACKAGES = {
    "munged": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
    "sbatch": "slurm-client",
}


def slurm_missing() -> str | None:
    """Why SLURM cannot be started here (None when it can)."""
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool, path=_path()) is None]
    if missing:
        return f"SLURM packages missing ({' '.join(missing)}): run tests/cluster/install.sh"
    return None


def _private_tmpfs(path: str) -> bool:
    """Whether ``path`` is a tmpfs mount point (made by netns_command in our namespace)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == path and fields[fields.index("-") + 1] == "tmpfs":
            return True
    return False


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


@dataclass
class SlurmCluster:
    root: Path
    env: dict[str, str]
    daemons: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 - kept by Popen
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.daemons.append((name, proc))

    def run(self, argv: list[str], timeout: float = 20, check: bool = True) -> str:
        out = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stdout}{out.stderr}")
        return out.stdout

    def wait_for(self, what: str, probe: list[str], ok: str = "", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.daemons:
                if proc.poll() is not None:
                    tail = (self.root / f"{name}.out").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{tail}")
            try:
                out = subprocess.run(
                    probe, env=self.env, capture_output=True, text=True, timeout=10
                )
                last = out.stdout + out.stderr
                if out.returncode == 0 and ok in out.stdout:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{what} did not come up: {last[-500:]} (see {self.root})")


@contextlib.contextmanager
def slurm_cluster(cpus: int | None = None) -> Iterator[SlurmCluster]:
    """Start munge, MariaDB, slurmdbd, slurmctld and slurmd; stop them all by PID afterwards."""
    assert_loopback_only()
    d = Path(tempfile.mkdtemp(prefix="mcslurm-", dir="/tmp"))
    cpus = cpus or os.cpu_count() or 1
    for sub in ("state", "spool", "db", "munge"):
        (d / sub).mkdir()
    (d / "slurm.conf").write_text(SLURM_CONF.format(d=d, cpus=cpus, cluster=CLUSTER))
    dbd = d / "slurmdbd.conf"
    dbd.write_text(SLURMDBD_CONF.format(d=d))
    dbd.chmod(0o600)
    env = {**os.environ, "SLURM_CONF": str(d / "slurm.conf"), "PATH": _path()}
    cluster = SlurmCluster(d, env)
    munge = pwd.getpwnam("munge")
    d.chmod(0o755)  # munged (user munge) keeps its seed and log below
    try:
        if not _private_tmpfs(MUNGE_RUN):
            raise RuntimeError(
                f"{MUNGE_RUN} is not a private tmpfs: use netns_command(..., "
                f"private_dirs=('{MUNGE_RUN}',)) so munge's socket stays ours"
            )
        os.chown(MUNGE_RUN, munge.pw_uid, munge.pw_gid)
        os.chown(d / "munge", munge.pw_uid, munge.pw_gid)
        cluster.start(
            "munged",
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                "-F",
                f"--seed-file={d}/munge/seed",
                f"--log-file={d}/munge/log",
            ],
        )
        cluster.wait_for("munged", ["munge", "-n"])
        cluster.run(
            [
                "mariadb-install-db",
                f"--datadir={d}/db",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            timeout=120,
        )
        sock = f"{d}/mysql.sock"
        cluster.start(
            "mariadbd",
            [
                "mariadbd",
                "--user=root",
                f"--datadir={d}/db",
                f"--socket={sock}",
                "--bind-address=127.0.0.1",
                "--port=3306",
                "--skip-name-resolve",
                f"--pid-file={d}/mariadb.pid",
                "--innodb-buffer-pool-size=32M",
            ],
        )
        cluster.wait_for("MariaDB", ["mariadb", f"--socket={sock}", "-e", "select 1"])
        cluster.run(
            [
                "mariadb",
                f"--socket={sock}",
                "-e",
                "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
                "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
            ]
        )
        cluster.start("slurmdbd", ["slurmdbd", "-D"])  # reads slurmdbd.conf beside SLURM_CONF
        cluster.wait_for("slurmdbd", ["sacctmgr", "-n", "list", "cluster"])
        cluster.run(["sacctmgr", "-i", "add", "cluster", CLUSTER])
        cluster.start("slurmctld", ["slurmctld", "-D", "-i"])
        cluster.wait_for("slurmctld", ["scontrol", "ping"], ok="UP")
        cluster.start("slurmd", ["slurmd", "-D", "-N", "localhost"])
        cluster.wait_for("slurmd", ["sinfo", "-h", "-o", "%T"], ok="idle")
        yield cluster
    finally:
        for _, proc in reversed(cluster.daemons):
            with contextlib.suppress(OSError):
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        end_namespace_processes()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":  # by hand, through netns_command(argv, private_dirs=(MUNGE_RUN,))
    t0 = time.monotonic()
    with slurm_cluster() as c:
        print(f"up in {time.monotonic() - t0:.1f} s")
        print(c.run(["sinfo"]))
        print(c.run(["srun", "hostname"]))
