from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import image_grid

    image_grid(
        sm.input.images,
        sm.input.manifest,
        sm.output[0],
        f"{sm.wildcards.method}, IPC {sm.wildcards.ipc}",
    )
