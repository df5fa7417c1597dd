from _stage import stage

with stage(snakemake) as (runtime, params):  # noqa: F821
    from ddflow.stages import run_data

    run_data(params["dataset"], snakemake.output.npz, snakemake.output.meta)  # noqa: F821
