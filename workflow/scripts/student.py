from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_student

    run_student(
        sm.input.images,
        sm.input.manifest,
        sm.input.npz,
        sm.input.meta,
        sm.input.get("teacher"),
        sm.input.teacher_metrics,
        params["student"],
        int(sm.wildcards.seed),
        params["info"],
        runtime,
        sm.output[0],
        threads=sm.threads,
        label_shards=list(sm.input.get("labels", [])),
        labelers=list(sm.input.get("labelers", [])) or None,
    )
