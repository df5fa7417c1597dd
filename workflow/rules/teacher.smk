rule teacher:
    input:
        unpack(teacher_inputs),
    output:
        ckpt="results/{ds}/teacher/{tarch}-{tid}/teacher.pt",
        metrics="results/{ds}/teacher/{tarch}-{tid}/metrics.json",
    log:
        "results/{ds}/teacher/{tarch}-{tid}/teacher.log",
    wildcard_constraints:
        tarch=r"[A-Za-z0-9_][A-Za-z0-9_.:-]*",
        tid=r"[0-9a-f]{10}",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=teacher_runtime,
    params:
        teacher=lambda w: canonical_json(teacher_result_keys(teacher_block(w))),
        stage_id=lambda w: canonical_json(w.tid),
    script:
        "../scripts/teacher.py"


rule stats:
    input:
        unpack(stats_inputs),
    output:
        "results/{ds}/stats/{tarch}-{xid}/part{k}-of{parts}.npz",
    log:
        "results/{ds}/stats/{tarch}-{xid}/part{k}-of{parts}.log",
    wildcard_constraints:
        tarch=r"[A-Za-z0-9_][A-Za-z0-9_.:-]*",
        xid=r"[0-9a-f]{10}",
        k=r"\d{3}",
        parts=r"\d{3}",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    params:
        spec=stats_params,
    script:
        "../scripts/stats.py"
