import logging

from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import image_grid

    flat = image_grid(
        sm.input.images,
        sm.input.manifest,
        sm.output[0],
        f"{sm.wildcards.method}, IPC {sm.wildcards.ipc}",
    )
    if flat:
        logging.warning(
            "%s IPC %s: every image of class(es) %s is near-constant (a collapsed recovery?); "
            "the grid's title says so",
            sm.wildcards.method,
            sm.wildcards.ipc,
            ", ".join(flat),
        )
