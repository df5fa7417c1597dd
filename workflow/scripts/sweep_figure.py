from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import sweep_plot

    sweep_plot(sm.input[0], sm.output[0], f"sweep {sm.wildcards.sweep}")
