from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_teacher

    run_teacher(
        sm.input.npz,
        sm.input.meta,
        params["teacher"],
        params["stage_id"],
        runtime,
        sm.output.ckpt,
        sm.output.metrics,
        threads=sm.threads,
    )
