from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_stats

    run_stats(
        sm.input.npz,
        sm.input.meta,
        sm.input.teacher,
        params["spec"],
        (int(sm.wildcards.k), int(sm.wildcards.parts)),
        runtime,
        sm.output[0],
        threads=sm.threads,
    )
