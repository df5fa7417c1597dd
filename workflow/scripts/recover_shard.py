from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_recover_shard

    run_recover_shard(
        sm.input.npz,
        sm.input.meta,
        sm.input.get("teacher"),
        sm.input.get("ranking"),
        params["method"],
        sm.wildcards.mid,
        sm.wildcards.shard,
        runtime,
        sm.output[0],
        threads=sm.threads,
        teachers=list(sm.input.get("teachers", [])),
        stats=[list(sm.input[k]) for k in sm.input.keys() if k.startswith("stats_")],
        source=list(sm.input.get("source", [])),
    )
