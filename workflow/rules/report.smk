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
        csv=report(
            f"{REPORT_DIR}/tables/summary.csv",
            caption="../report/summary.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
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
        report(
            f"{REPORT_DIR}/figures/student_curves.png",
            caption="../report/student_curves.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
    log:
        f"{REPORT_DIR}/logs/student_curves.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    params:
        title=canonical_json(CURVES_TITLE),
    script:
        "../scripts/student_curves.py"


rule image_grid:
    input:
        images=grid_images,
        manifest=grid_manifest,
        teacher_metrics=TEACHER_METRICS,
    output:
        report(
            f"{REPORT_DIR}/figures/grid-{{method}}-ipc{{ipc}}.png",
            caption="../report/grid.rst",
            category=REPORT_CATEGORY,
            subcategory="distilled images",
            labels={"method": "{method}", "IPC": "{ipc}"},
        ),
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
        csv=report(
            f"{REPORT_DIR}/tables/sweep-{{sweep}}.csv",
            caption="../report/sweep.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
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
        report(
            f"{REPORT_DIR}/figures/sweep-{{sweep}}.png",
            caption="../report/sweep.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
    log:
        f"{REPORT_DIR}/logs/sweep-figure-{{sweep}}.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/sweep_figure.py"


rule crop_figures:
    output:
        schedules=report(
            f"{REPORT_DIR}/figures/crop_schedules.png",
            caption="../report/crop.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
        boxes=report(
            f"{REPORT_DIR}/figures/crop_boxes.png",
            caption="../report/crop.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
    log:
        f"{REPORT_DIR}/logs/crop_figures.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    params:
        methods=canonical_json(CURRICULA),
    script:
        "../scripts/crop_figures.py"


rule snapshot_figure:
    input:
        snapshot_npzs(),
    output:
        report(
            f"{REPORT_DIR}/figures/snapshots.png",
            caption="../report/snapshots.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
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
        classifier=canonical_json(CFG["report"]["set_classifier"]),
    script:
        "../scripts/diversity.py"


rule diversity_report:
    input:
        diversity_results(),
    output:
        csv=report(
            f"{REPORT_DIR}/tables/diversity.csv",
            caption="../report/diversity.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
        md=f"{REPORT_DIR}/tables/diversity.md",
        png=report(
            f"{REPORT_DIR}/figures/diversity.png",
            caption="../report/diversity.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
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
        csv=report(
            f"{REPORT_DIR}/tables/cost.csv",
            caption="../report/cost.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
        md=f"{REPORT_DIR}/tables/cost.md",
    log:
        f"{REPORT_DIR}/logs/cost.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/cost_table.py"


rule protocol_table:
    input:
        student_results(),
    output:
        csv=f"{REPORT_DIR}/tables/protocols.csv",
        md=report(
            f"{REPORT_DIR}/tables/protocols.md",
            caption="../report/protocols.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
    log:
        f"{REPORT_DIR}/logs/protocols.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/protocol_table.py"


rule label_bytes_figure:
    input:
        summary=f"{REPORT_DIR}/tables/summary.csv",
        cost=f"{REPORT_DIR}/tables/cost.csv",
    output:
        report(
            f"{REPORT_DIR}/figures/label_bytes.png",
            caption="../report/label_bytes.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
    log:
        f"{REPORT_DIR}/logs/label_bytes.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/label_bytes_figure.py"


rule label_budget_table:
    input:
        summary=f"{REPORT_DIR}/tables/summary.csv",
        cost=f"{REPORT_DIR}/tables/cost.csv",
    output:
        csv=f"{REPORT_DIR}/tables/label_budgets.csv",
        md=report(
            f"{REPORT_DIR}/tables/label_budgets.md",
            caption="../report/label_budgets.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
    log:
        f"{REPORT_DIR}/logs/label_budgets.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/label_budget_table.py"


rule paper_tables:
    input:
        unpack(paper_table_inputs),
    output:
        paper_outputs(),
    log:
        f"{REPORT_DIR}/logs/paper_tables.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/paper_tables.py"


rule incremental_report:
    input:
        application_results("incremental", "incremental", "cl"),
    output:
        csv=f"{REPORT_DIR}/tables/incremental.csv",
        md=report(
            f"{REPORT_DIR}/tables/incremental.md",
            caption="../report/incremental.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
        png=report(
            f"{REPORT_DIR}/figures/incremental.png",
            caption="../report/incremental.rst",
            category=REPORT_CATEGORY,
            subcategory="figures",
        ),
    log:
        f"{REPORT_DIR}/logs/incremental_report.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/incremental_report.py"


rule pruning_report:
    input:
        application_results("pruning", "pruned", "prune"),
    output:
        csv=f"{REPORT_DIR}/tables/pruning.csv",
        md=report(
            f"{REPORT_DIR}/tables/pruning.md",
            caption="../report/pruning.rst",
            category=REPORT_CATEGORY,
            subcategory="tables",
        ),
    log:
        f"{REPORT_DIR}/logs/pruning_report.log",
    localrule: True
    conda:
        "../../envs/ddflow.yaml"
    script:
        "../scripts/pruning_report.py"
