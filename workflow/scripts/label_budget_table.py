from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.tables import write_budget_table

    table = write_budget_table(sm.input.summary, sm.input.cost, sm.output.csv, sm.output.md)
    print(table.to_string())
