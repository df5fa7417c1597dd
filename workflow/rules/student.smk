rule relabel:
    input:
        unpack(relabel_inputs),
    output:
        "results/{ds}/labels/{method}-{mid}/ipc{ipc}/relabel-{rid}/epochs{first}-{last}.npz",
    log:
        "results/{ds}/labels/{method}-{mid}/ipc{ipc}/relabel-{rid}/epochs{first}-{last}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=relabel_runtime,
    params:
        relabel=relabel_params,
    script:
        "../scripts/relabel.py"


rule label_budget:
    input:
        unpack(label_budget_inputs),
    output:
        "results/{ds}/labels/{method}-{mid}/ipc{ipc}/relabel-{rid}/budget-{bid}/epochs{first}-{last}.npz",
    log:
        "results/{ds}/labels/{method}-{mid}/ipc{ipc}/relabel-{rid}/budget-{bid}/epochs{first}-{last}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=relabel_runtime,
    params:
        relabel=relabel_params,
    script:
        "../scripts/relabel.py"


rule student:
    input:
        unpack(student_inputs),
    output:
        "results/{ds}/students/{method}-{mid}/ipc{ipc}/student-{sid}/seed{seed}.json",
    log:
        "results/{ds}/students/{method}-{mid}/ipc{ipc}/student-{sid}/seed{seed}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=student_runtime,
    params:
        student=student_json,
        info=student_info,
    script:
        "../scripts/student.py"


rule incremental:
    input:
        unpack(application_inputs),
    output:
        "results/{ds}/incremental/{method}-{mid}/ipc{ipc}/student-{sid}/cl-{cid}/seed{seed}.json",
    log:
        "results/{ds}/incremental/{method}-{mid}/ipc{ipc}/student-{sid}/cl-{cid}/seed{seed}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=incremental_runtime,
    params:
        student=student_json,
        info=student_info,
        incremental=lambda w: application_json("incremental", w.cid, w),
    script:
        "../scripts/incremental.py"


rule pruned_student:
    input:
        unpack(pruned_student_inputs),
    output:
        "results/{ds}/pruned/{method}-{mid}/ipc{ipc}/student-{sid}/prune-{pid}/seed{seed}.json",
    log:
        "results/{ds}/pruned/{method}-{mid}/ipc{ipc}/student-{sid}/prune-{pid}/seed{seed}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=student_runtime,
    params:
        student=student_json,
        info=student_info,
        pruning=lambda w: application_json("pruning", w.pid, w),
    script:
        "../scripts/pruned_student.py"
