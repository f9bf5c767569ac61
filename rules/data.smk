# Data: download (where the dataset needs it) and prepare each task's train/test split once.


rule prepare_data:
    priority: TRAINING_PRIORITY
    output:
        paths.PREPARED,
    params:
        dataset=lambda wildcards: config["tasks"][wildcards.task]["dataset"],
        raw_dir="data/raw",
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
