"""Print, as JSON, the files a Snakemake run would (re)create: dry run through the Python API.

Run as a subprocess so each plan gets a fresh Snakemake (it keeps global state).
Usage: python _plan.py SNAKEFILE WORKDIR CONFIGFILE
"""

import json
import sys
from pathlib import Path

import yaml
from snakemake.api import ConfigSettings, DAGSettings, ResourceSettings, SnakemakeApi
from snakemake.settings.enums import RerunTrigger
from snakemake.settings.types import OutputSettings, Quietness

snakefile, workdir, configfile = map(Path, sys.argv[1:4])
# as users run: the workflow profile's rerun triggers
profile = yaml.safe_load((snakefile.parent / "profiles" / "default" / "config.yaml").read_text())
triggers = frozenset(RerunTrigger.parse_choice(t) for t in profile["rerun-triggers"])
updated: list[str] = []
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[configfile]),
        snakefile=snakefile,
        workdir=workdir,
    )
    dag = wf.dag(DAGSettings(rerun_triggers=triggers))
    dag.execute_workflow(executor="dryrun", updated_files=updated)
print(json.dumps(sorted(updated)))
