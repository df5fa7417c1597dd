from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.stages import run_data

    # dataset.download is left out of the params (not part of any id): taken from the config
    fetch = {"download": bool(sm.config["dataset"].get("download", False))}
    run_data({**params["dataset"], **fetch}, sm.output.npz, sm.output.meta)
