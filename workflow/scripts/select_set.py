from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_select

    run_select(
        sm.input.npz,
        sm.input.meta,
        sm.input.get("teacher"),
        sm.input.get("features"),
        int(sm.wildcards.ipc),
        params["method"],
        sm.wildcards.mid,
        params["info"],
        runtime,
        sm.output.images,
        sm.output.manifest,
        threads=sm.threads,
        teachers=list(sm.input.get("teachers", [])),
    )
