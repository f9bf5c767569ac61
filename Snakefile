# Memristor-Aware Training: the whole study as one DAG.
#   snakemake --cores all                                  # embedded demo (config.yaml)
#   snakemake --cores 8 --configfile config/paper_mnist.yaml
# Logic lives in the library (src/memristor_mat); rules and scripts only wire it.
from snakemake.utils import min_version, validate

min_version("9.0")


# config.yaml is the embedded demo. A --configfile replaces it instead of being merged into it
# (Snakemake's default), so no demo task or key leaks into a paper-scale run.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# One schema for the workflow and the command line; it also fills in defaults.
validate(config, "src/memristor_mat/config.schema.json")


report: "report/workflow.rst"


# Light jobs run in the submitting process: on a cluster only data preparation, training and
# evaluation become batch jobs (one sbatch per table or figure would mostly wait in the queue).
# Fetching raw data runs there too: a login node has network, compute nodes often have none.
localrules:
    all,
    fetch_raw_data,
    pretrain_all,
    train_all,
    evaluate_all,
    figures_all,
    aggregate,
    aggregate_devices,
    figures,
    device_figure,
    method_figure,
    compare_tasks,
    record_traces,
    heartbeat_figure,


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
