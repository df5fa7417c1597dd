from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_incremental

    run_incremental(
        sm.input.images,
        sm.input.manifest,
        sm.input.npz,
        sm.input.meta,
        sm.input.get("teacher"),
        params["student"],
        params["incremental"],
        int(sm.wildcards.seed),
        params["info"],
        runtime,
        sm.output[0],
        threads=sm.threads,
        labelers=list(sm.input.get("labelers", [])) or None,
    )
