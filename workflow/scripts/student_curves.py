from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import student_curves

    student_curves(list(sm.input), sm.output[0], params["title"])
