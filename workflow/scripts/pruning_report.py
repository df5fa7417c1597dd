from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.tables import write_pruning_table

    write_pruning_table(list(sm.input), sm.output.csv, sm.output.md)
