"""Print, as JSON, the files a Snakemake run would (re)create: dry run through the Python API.

Run as a subprocess so each plan gets a fresh Snakemake (it keeps global state).
Usage: python _plan.py SNAKEFILE WORKDIR CONFIGFILE
"""

import json
import sys
from pathlib import Path

from snakemake.api import ConfigSettings, DAGSettings, ResourceSettings, SnakemakeApi
from snakemake.settings.types import OutputSettings, Quietness

snakefile, workdir, configfile = map(Path, sys.argv[1:4])
updated: list[str] = []
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[configfile]),
        snakefile=snakefile,
        workdir=workdir,
    )
    wf.dag(DAGSettings()).execute_workflow(executor="dryrun", updated_files=updated)
print(json.dumps(sorted(updated)))
