from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_diversity

    run_diversity(
        sm.input.images,
        sm.input.manifest,
        sm.input.meta,
        sm.input.teacher,
        params["info"],
        runtime,
        sm.output[0],
        threads=sm.threads,
        classifier=params["classifier"],
    )
