# Data: fetch the raw files once for every task that reads them (download, generate or check;
# a local rule, so on a cluster it runs where the workflow was started, which has network where
# compute nodes may not), then prepare each task's train/test split once.


rule fetch_raw_data:
    priority: TRAINING_PRIORITY
    output:
        paths.RAW_MANIFEST,
    params:
        raw=lambda wildcards: dataclasses.asdict(pipeline.raw_data_jobs(config)[wildcards.raw]),
        raw_dir=lambda wildcards, output: paths.raw_dir_of(output[0]),
    log:
        paths.log("fetch_raw_data", "{raw}"),
    benchmark:
        paths.benchmark("fetch_raw_data", "{raw}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime="60m",
    conda:
        ENV
    script:
        "../scripts/fetch_raw_data.py"


rule prepare_data:
    priority: TRAINING_PRIORITY
    input:
        lambda wildcards: pipeline.raw_manifests(config, wildcards.task),
    output:
        paths.PREPARED,
    params:
        dataset=lambda wildcards: config["tasks"][wildcards.task]["dataset"],
        raw_dir=paths.RAW_DIR,
    log:
        paths.log("prepare_data", "{task}"),
    benchmark:
        paths.benchmark("prepare_data", "{task}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    conda:
        ENV
    script:
        "../scripts/prepare_data.py"
