from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_random

    run_random(
        sm.input.npz,
        sm.input.meta,
        int(sm.wildcards.ipc),
        params["method"],
        params["info"],
        sm.output.images,
        sm.output.manifest,
    )
