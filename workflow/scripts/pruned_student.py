from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_pruned_student

    run_pruned_student(
        sm.input.images,
        sm.input.manifest,
        sm.input.npz,
        sm.input.meta,
        sm.input.teacher,
        sm.input.teacher_metrics,
        params["student"],
        params["pruning"],
        int(sm.wildcards.seed),
        params["info"],
        runtime,
        sm.output[0],
        threads=sm.threads,
    )
