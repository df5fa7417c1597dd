rule data:
    output:
        npz=DATA_NPZ,
        meta=DATA_META,
    log:
        f"{DATA_DIR}/data.log",
    conda:
        "../../envs/ddflow.yaml"
    resources:
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    params:
        # exactly the data id's slice: how the data is fetched (download) reruns nothing
        dataset=canonical_json(IDS.data_slice["dataset"]),
        # what the user's folders hold: a file changed there reruns the data stage
        content=lambda w: content_param(DATA_META, data_content(CFG["dataset"])),
    script:
        "../scripts/data.py"
