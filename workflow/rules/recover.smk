rule rank:
    input:
        unpack(ranking_inputs),
    output:
        RANKING,
    log:
        RANKING.replace(".npz", ".log"),
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    params:
        ranker=canonical_json(CFG.get("ranker")),
    script:
        "../scripts/rank.py"


rule recover_shard:
    input:
        unpack(method_inputs),
    output:
        "results/{ds}/recover/{method}-{mid}/shards/{shard}.npz",
    log:
        "results/{ds}/recover/{method}-{mid}/logs/{shard}.log",
    wildcard_constraints:
        method="|".join(SHARDED) or "^$",
    # Shards are the long pole: start them before students of sets that are already done, and
    # together, so a SLURM profile submits them as one job array.
    priority: 10
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=recover_runtime,
    params:
        method=method_json,
    script:
        "../scripts/recover_shard.py"


rule assemble:
    input:
        shards=shard_inputs,
        meta=DATA_META,
    output:
        images=directory("results/{ds}/distilled/{method}-{mid}/ipc{ipc}/images"),
        manifest="results/{ds}/distilled/{method}-{mid}/ipc{ipc}/manifest.json",
    log:
        "results/{ds}/distilled/{method}-{mid}/ipc{ipc}/assemble.log",
    wildcard_constraints:
        method="|".join(SHARDED) or "^$",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    params:
        info=manifest_info,
    script:
        "../scripts/assemble.py"


rule snapshots:
    input:
        unpack(method_inputs),
    output:
        "results/{ds}/snapshots/{method}-{mid}.npz",
    log:
        "results/{ds}/snapshots/{method}-{mid}.log",
    wildcard_constraints:
        method="|".join(SHARDED) or "^$",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    params:
        spec=snapshot_params,
    script:
        "../scripts/snapshots.py"


rule features:
    input:
        npz=DATA_NPZ,
        meta=DATA_META,
        teacher=TEACHER_CKPT,
    output:
        FEATURES,
    log:
        FEATURES.replace(".npz", ".log"),
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    script:
        "../scripts/features.py"


rule select_set:
    input:
        unpack(method_inputs),
    output:
        images=directory("results/{ds}/distilled/{method}-{mid}/ipc{ipc}/images"),
        manifest="results/{ds}/distilled/{method}-{mid}/ipc{ipc}/manifest.json",
    log:
        "results/{ds}/distilled/{method}-{mid}/ipc{ipc}/select.log",
    wildcard_constraints:
        method="|".join(SELECTED) or "^$",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=distilled_set_mem_mb,
        runtime=inference_runtime,
    params:
        method=method_json,
        info=manifest_info,
        content=method_content,
    script:
        "../scripts/select_set.py"
