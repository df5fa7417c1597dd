from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_assemble

    run_assemble(
        list(sm.input.shards),
        sm.input.meta,
        int(sm.wildcards.ipc),
        params["info"],
        sm.output.images,
        sm.output.manifest,
    )
