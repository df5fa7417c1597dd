import re

from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import snapshots

    methods = [re.search(r"snapshots/(.+)-[0-9a-f]{10}\.npz$", p).group(1) for p in sm.input]
    snapshots(list(sm.input), methods, sm.output[0])
