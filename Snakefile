# ddflow: data -> teacher -> recover shards -> assemble -> students -> tables and figures.
from snakemake.utils import min_version

min_version("9.0")


# An experiment given with --configfile is the whole experiment: the embedded default is read
# only when no config file is given, so no default key leaks into a paper config (--config
# overrides apply either way).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/recover.smk"
include: "workflow/rules/student.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
    localrule: True
