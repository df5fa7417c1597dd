from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_features

    run_features(
        sm.input.npz, sm.input.meta, sm.input.teacher, runtime, sm.output[0], threads=sm.threads
    )
