rule teacher:
    input:
        unpack(teacher_inputs),
    output:
        ckpt=TEACHER_CKPT,
        metrics=TEACHER_METRICS,
    log:
        f"{TEACHER_DIR}/teacher.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=teacher_runtime,
    params:
        teacher=canonical_json(teacher_result_keys(CFG["teacher"])),
        stage_id=canonical_json(IDS.teacher),
    script:
        "../scripts/teacher.py"
