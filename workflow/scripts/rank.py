from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_rank

    run_rank(
        sm.input.npz,
        sm.input.meta,
        sm.input.get("teacher"),
        params["ranker"],
        runtime,
        sm.output[0],
        threads=sm.threads,
    )
