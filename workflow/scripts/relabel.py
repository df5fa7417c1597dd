from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_relabel

    # the relabel rule, and a label budget's (from the relabel's file of the range, or labelling
    # only the kept batches)
    run_relabel(
        sm.input.get("images"),
        sm.input.manifest,
        sm.input.get("npz"),
        sm.input.meta,
        sm.input.get("teacher"),
        sm.input.teacher_metrics,
        params["relabel"],
        runtime,
        sm.output[0],
        threads=sm.threads,
        labelers=list(sm.input.get("labelers", [])) or None,
        source=sm.input.get("source"),
    )
