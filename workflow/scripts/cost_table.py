from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.tables import write_cost_table

    table = write_cost_table(list(sm.input.students), sm.input.teacher, sm.output.csv, sm.output.md)
    print(table.to_string())
