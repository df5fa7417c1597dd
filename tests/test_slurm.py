"""The tiny config end to end through profiles/slurm on a real one-node SLURM cluster.

The cluster comes from Debian's slurm-wlm and munge (.ci/run installs them) and is stopped after
the module. Every job that is not a local rule must have gone through sbatch: its log names the
SLURM job id that Snakemake reported at submission.
"""

import re
import subprocess

import pytest
import yaml

import slurm_cluster
from conftest import ROOT, snakemake_cmd

pytestmark = pytest.mark.workflow
TINY = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
REMOTE_RULES = {"data", "teacher", "recover_shard", "select_set", "student", "diversity"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        c = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    except slurm_cluster.ClusterUnavailable as e:
        pytest.skip(str(e))
    yield c
    c.stop()


def test_tiny_config_runs_through_sbatch(cluster, tmp_path):
    cfg = {**TINY, "ipc": [2], "runtime": {**TINY["runtime"], "device": "cpu"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = snakemake_cmd(
        tmp_path,
        tmp_path / "config.yaml",
        "--workflow-profile",
        str(ROOT / "profiles" / "slurm"),
        # what a site profile would say for this test cluster
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--jobs",
        "4",
    )
    out = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]

    singles = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    arrays = set(
        re.findall(r"Submitted array job with Snakemake IDs [\d,]+ and SLURM job ID (\d+)", log)
    )
    assert arrays, "recovery shards were not submitted as a job array"

    seen = {}
    for job_log in tmp_path.glob("results/**/*.log"):
        m = re.search(
            r"rule (\w+) on \S+, SLURM job (\w+) \(array job (\w+)\)", job_log.read_text()
        )
        if m:
            seen[job_log] = m.groups()
    remote = {p: g for p, g in seen.items() if g[0] in REMOTE_RULES}
    assert {g[0] for g in remote.values()} == REMOTE_RULES
    for path, (rule, job_id, array_id) in remote.items():
        assert job_id in singles or array_id in arrays, f"{path} ({rule}) did not run under sbatch"
    local = [g for g in seen.values() if g[0] not in REMOTE_RULES]
    assert local and all(job_id == "none" for _, job_id, _ in local)  # local rules stay local
    assert (tmp_path / "results/tiny/tables/summary.csv").exists()

    again = subprocess.run(cmd + ["-n"], env=cluster.env, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
