from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from pathlib import Path

    import pandas as pd
    import yaml

    from ddflow.config import paper_table_names
    from ddflow.report.paper import experiment_cells, write_paper

    experiment = yaml.safe_load(Path(sm.input.experiment).read_text())
    cells = experiment_cells(pd.read_csv(sm.input.summary), experiment)
    tables = paper_table_names(experiment["config"]["report"]["paper"])
    for item in write_paper(cells, tables, Path(sm.output[0]).parent):
        print(item["path"], item["caption"])
