from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.io import write_yaml

    write_yaml(sm.output[0], params["record"])
