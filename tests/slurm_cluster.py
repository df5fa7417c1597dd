"""A one-node SLURM cluster on loopback from Debian's slurm-wlm and munge, for the SLURM tests.

Follows the recipe in shared/docs/design.md: munge with a fresh key, slurmctld and slurmd
with every state/spool/log path in a temp folder, no accounting database (so status comes
from squeue). `start()` returns a handle whose `stop()` ends every daemon it started.

The config goes to the default path, /etc/slurm/slurm.conf: the SLURM plugin's job step drops
SLURM_CONF before its inner srun, so a config elsewhere is invisible inside jobs. An existing
config (a real cluster node) is never touched: the tests then skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
CONF = Path("/etc/slurm/slurm.conf")


class ClusterUnavailable(RuntimeError):
    """Why this machine cannot run the test cluster (not root, packages missing)."""


@dataclass
class Cluster:
    root: Path
    munge_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for name in ("slurmd", "slurmctld"):
            pidfile = self.root / f"{name}.pid"
            if pidfile.exists():
                _kill(int(pidfile.read_text().split()[0]))
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)
        CONF.unlink(missing_ok=True)
        shutil.rmtree(self.munge_dir, ignore_errors=True)


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
    if CONF.exists():
        raise ClusterUnavailable(f"{CONF} exists (a real SLURM node?); the test will not touch it")


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

    # munged runs as user munge, which cannot enter pytest's private temp folders.
    munge_dir = Path(tempfile.mkdtemp(prefix="ddflow-munge-"))
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    sock = munge_dir / "munge.socket"
    shutil.chown(munge_dir, "munge", "munge")
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
    conf = CONF
    conf.parent.mkdir(parents=True, exist_ok=True)
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
    cluster = Cluster(root, munge_dir, [munged])
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
