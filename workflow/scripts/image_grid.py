import logging

from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.config import validate_config
    from ddflow.io import read_json
    from ddflow.report.figures import image_grid

    cfg = validate_config(sm.config)
    top1 = read_json(sm.input.teacher_metrics)["test_top1"]
    flat = image_grid(
        sm.input.images,
        sm.input.manifest,
        sm.output[0],
        f"{sm.wildcards.method} ({cfg['methods'][sm.wildcards.method]['kind']}), IPC "
        f"{sm.wildcards.ipc}; teacher {cfg['teacher']['arch']} at {top1:.2f}% test top-1",
    )
    if flat:
        logging.warning(
            "%s IPC %s: every image of class(es) %s is near-constant (a collapsed recovery?); "
            "the grid's title says so",
            sm.wildcards.method,
            sm.wildcards.ipc,
            ", ".join(flat),
        )
