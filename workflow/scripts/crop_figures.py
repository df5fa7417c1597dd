from _stage import stage

sm = snakemake  # noqa: F821
with stage(sm) as (runtime, params):
    from ddflow.report.figures import crop_boxes, crop_schedules

    crop_schedules(sm.output.schedules, params["methods"])
    crop_boxes(sm.output.boxes, params["methods"])
