# robinterp: standard vs adversarially robust classifiers, and how interpretable they are.
#   snakemake --cores all --use-conda                       # the paper (config.yaml), on a GPU box
#   snakemake --cores 2 --configfile workflow/configs/demo.yaml   # offline digits demo
# Every rule calls `robinterp <verb>` with explicit input/output paths (docs/development.md).

from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the paper; `--configfile X` replaces it (not merged), so a demo or user config
# never inherits the paper's datasets. `--config key=value` still overrides single keys.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/small_imagenet.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/published.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/fid.smk"
include: "workflow/rules/attribution_metrics.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        all_targets(),
    default_target: True
