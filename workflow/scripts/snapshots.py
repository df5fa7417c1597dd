from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_snapshots

    spec = params["spec"]
    run_snapshots(
        sm.input.npz,
        sm.input.meta,
        sm.input.teacher,
        sm.input.get("ranking"),
        spec["method"],
        sm.wildcards.mid,
        spec["classes"],
        spec["steps"],
        runtime,
        sm.output[0],
        threads=sm.threads,
    )
