from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import incremental_figure
    from ddflow.report.tables import write_incremental_table

    write_incremental_table(list(sm.input), sm.output.csv, sm.output.md)
    incremental_figure(list(sm.input), sm.output.png)
