"""A one-node SLURM cluster on loopback from Debian's slurm-wlm and munge, for the SLURM tests.

Follows the recipe in shared/docs/design.md: munge with a fresh key, slurmctld and slurmd
with every state/spool/log path in a temp folder, no accounting database (so status comes
from squeue). `start()` returns a handle whose `stop()` ends every daemon it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


class ClusterUnavailable(RuntimeError):
    """Why this machine cannot run the test cluster (not root, packages missing)."""


@dataclass
class Cluster:
    root: Path
    conf: Path
    pids: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for name in ("slurmd", "slurmctld"):
            pidfile = self.root / f"{name}.pid"
            if pidfile.exists():
                _kill(int(pidfile.read_text().split()[0]))
        for pid in self.pids:
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def check_available() -> None:
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test SLURM cluster needs root (munge key, slurmd)")
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        raise ClusterUnavailable(
            f"{missing} not installed: apt-get install slurm-wlm munge (.ci/run does this)"
        )


def _wait(what: str, ok, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if ok():
            return
        time.sleep(0.3)
    raise RuntimeError(f"test SLURM cluster: {what} did not come up in {timeout:.0f}s")


def start(root: Path) -> Cluster:
    check_available()
    root.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)

    munge_dir = root / "munge"
    munge_dir.mkdir(exist_ok=True)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    sock = munge_dir / "munge.socket"
    for p in (munge_dir,):
        shutil.chown(p, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    munge_dir.chmod(0o700)
    munged = subprocess.Popen(
        [
            shutil.which("munged") or "/usr/sbin/munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--log-file={munge_dir / 'munged.log'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
        ],
        user="munge",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait("munged", sock.exists)

    for d in ("state", "spool", "log"):
        (root / d).mkdir(exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=ddflowtest
SlurmctldHost={host}
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=300
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    cluster = Cluster(root, conf, [munged.pid])
    env = cluster.env
    try:
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run(
                [shutil.which(daemon) or f"/usr/sbin/{daemon}", "-f", str(conf)],
                env=env,
                check=True,
                capture_output=True,
            )

        def idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True
            )
            return out.stdout.strip() in ("idle", "mix")

        _wait("the node (sinfo idle)", idle)
    except Exception:
        cluster.stop()
        raise
    return cluster
