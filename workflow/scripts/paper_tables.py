from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from pathlib import Path

    import pandas as pd
    import yaml

    from ddflow.config import paper_table_names
    from ddflow.io import read_json
    from ddflow.report.paper import experiment_cells, write_paper

    experiment = yaml.safe_load(Path(sm.input.experiment).read_text())
    named = dict(sm.input.items())
    applications = {k: pd.read_csv(named[k]) for k in ("incremental", "pruning") if k in named}
    teacher = read_json(sm.input.teacher)
    cost = {"table": pd.read_csv(sm.input.cost), "teacher": teacher["cost"]}
    summary = pd.read_csv(sm.input.summary)
    cells = experiment_cells(summary, experiment, applications, cost, teacher)
    tables = paper_table_names(experiment["config"]["report"]["paper"])
    for item in write_paper(cells, tables, Path(sm.output[0]).parent):
        print(item["path"], item["caption"])
