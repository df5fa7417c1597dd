from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import label_bytes_figure

    label_bytes_figure(sm.input.summary, sm.input.cost, sm.output[0])
