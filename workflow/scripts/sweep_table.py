from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.tables import write_sweep_table

    table = write_sweep_table(
        list(sm.input.sweep), list(sm.input.baseline), sm.output.csv, sm.output.md
    )
    print(table.to_string())
