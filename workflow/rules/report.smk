rule experiment:
    output:
        f"{REPORT_DIR}/experiment.yaml",
    log:
        f"{REPORT_DIR}/logs/experiment.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    params:
        record=canonical_json(EXPERIMENT),
    script:
        "../scripts/experiment.py"


rule tables:
    input:
        student_results(),
    output:
        csv=f"{REPORT_DIR}/tables/summary.csv",
        md=f"{REPORT_DIR}/tables/summary.md",
    log:
        f"{REPORT_DIR}/logs/tables.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/tables.py"


rule student_curves:
    input:
        student_results(),
    output:
        f"{REPORT_DIR}/figures/student_curves.png",
    log:
        f"{REPORT_DIR}/logs/student_curves.log",
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
        f"{REPORT_DIR}/figures/grid-{{method}}-ipc{{ipc}}.png",
    log:
        f"{REPORT_DIR}/logs/grid-{{method}}-ipc{{ipc}}.log",
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
        csv=f"{REPORT_DIR}/tables/sweep-{{sweep}}.csv",
        md=f"{REPORT_DIR}/tables/sweep-{{sweep}}.md",
    log:
        f"{REPORT_DIR}/logs/sweep-{{sweep}}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/sweep_table.py"


rule sweep_figure:
    input:
        f"{REPORT_DIR}/tables/sweep-{{sweep}}.csv",
    output:
        f"{REPORT_DIR}/figures/sweep-{{sweep}}.png",
    log:
        f"{REPORT_DIR}/logs/sweep-figure-{{sweep}}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/sweep_figure.py"


rule crop_figures:
    output:
        schedules=f"{REPORT_DIR}/figures/crop_schedules.png",
        boxes=f"{REPORT_DIR}/figures/crop_boxes.png",
    log:
        f"{REPORT_DIR}/logs/crop_figures.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/crop_figures.py"


rule snapshot_figure:
    input:
        snapshot_npzs(),
    output:
        f"{REPORT_DIR}/figures/snapshots.png",
    log:
        f"{REPORT_DIR}/logs/snapshots.log",
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
        mem_mb=distilled_set_mem_mb,
        runtime=inference_runtime,
    params:
        info=manifest_info,
    script:
        "../scripts/diversity.py"


rule diversity_report:
    input:
        diversity_results(),
    output:
        csv=f"{REPORT_DIR}/tables/diversity.csv",
        md=f"{REPORT_DIR}/tables/diversity.md",
        png=f"{REPORT_DIR}/figures/diversity.png",
    log:
        f"{REPORT_DIR}/logs/diversity.log",
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
        csv=f"{REPORT_DIR}/tables/cost.csv",
        md=f"{REPORT_DIR}/tables/cost.md",
    log:
        f"{REPORT_DIR}/logs/cost.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/cost_table.py"
