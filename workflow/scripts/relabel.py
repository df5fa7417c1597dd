from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_relabel

    run_relabel(
        sm.input.images,
        sm.input.manifest,
        sm.input.npz,
        sm.input.meta,
        sm.input.teacher,
        sm.input.teacher_metrics,
        params["relabel"],
        runtime,
        sm.output[0],
        threads=sm.threads,
        labelers=list(sm.input.get("labelers", [])) or None,
    )
