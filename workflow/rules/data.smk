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
        dataset=canonical_json(CFG["dataset"]),
    script:
        "../scripts/data.py"
