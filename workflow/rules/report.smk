rule tables:
    input:
        student_results(),
    output:
        csv=f"results/{DS}/tables/summary.csv",
        md=f"results/{DS}/tables/summary.md",
    log:
        f"results/{DS}/logs/tables.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/tables.py"


rule student_curves:
    input:
        student_results(),
    output:
        f"results/{DS}/figures/student_curves.png",
    log:
        f"results/{DS}/logs/student_curves.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/student_curves.py"


rule image_grid:
    input:
        images=grid_images,
        manifest=grid_manifest,
    output:
        "results/{ds}/figures/grid-{method}-ipc{ipc}.png",
    log:
        "results/{ds}/logs/grid-{method}-ipc{ipc}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/image_grid.py"


rule sweep_table:
    input:
        sweep=sweep_results,
        baseline=baseline_results,
    output:
        csv="results/{ds}/tables/sweep-{sweep}.csv",
        md="results/{ds}/tables/sweep-{sweep}.md",
    log:
        "results/{ds}/logs/sweep-{sweep}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/sweep_table.py"


rule sweep_figure:
    input:
        "results/{ds}/tables/sweep-{sweep}.csv",
    output:
        "results/{ds}/figures/sweep-{sweep}.png",
    log:
        "results/{ds}/logs/sweep-figure-{sweep}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/sweep_figure.py"


rule crop_figures:
    output:
        schedules="results/{ds}/figures/crop_schedules.png",
        boxes="results/{ds}/figures/crop_boxes.png",
    log:
        "results/{ds}/logs/crop_figures.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/crop_figures.py"


rule snapshot_figure:
    input:
        snapshot_npzs(),
    output:
        "results/{ds}/figures/snapshots.png",
    log:
        "results/{ds}/logs/snapshots.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/snapshot_figure.py"


rule diversity:
    input:
        images="results/{ds}/distilled/{method}-{mid}/ipc{ipc}/images",
        manifest="results/{ds}/distilled/{method}-{mid}/ipc{ipc}/manifest.json",
        meta=DATA_META,
        teacher=TEACHER_CKPT,
    output:
        "results/{ds}/diversity/{method}-{mid}-ipc{ipc}.json",
    log:
        "results/{ds}/diversity/{method}-{mid}-ipc{ipc}.log",
    conda:
        "../../envs/ddflow.yaml"
    threads: threads_for_job()
    resources:
        gpu=GPU,
        mem_mb=DATA_MEM_MB,
        runtime=inference_runtime,
    params:
        info=manifest_info,
    script:
        "../scripts/diversity.py"


rule diversity_report:
    input:
        diversity_results(),
    output:
        csv=f"results/{DS}/tables/diversity.csv",
        md=f"results/{DS}/tables/diversity.md",
        png=f"results/{DS}/figures/diversity.png",
    log:
        f"results/{DS}/logs/diversity.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/diversity_report.py"


rule cost_table:
    input:
        students=student_results(),
        teacher=f"{TEACHER_DIR}/metrics.json",
    output:
        csv=f"results/{DS}/tables/cost.csv",
        md=f"results/{DS}/tables/cost.md",
    log:
        f"results/{DS}/logs/cost.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/cost_table.py"
