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
