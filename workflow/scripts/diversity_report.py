from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import diversity_bars
    from ddflow.report.tables import write_diversity_table

    print(write_diversity_table(list(sm.input), sm.output.csv, sm.output.md).to_string())
    diversity_bars(list(sm.input), sm.output.png)
