# Data: download (where the dataset needs it) and prepare each task's train/test split once.


rule prepare_data:
    output:
        "results/prepared/{task}.npz",
    params:
        dataset=lambda wildcards: config["tasks"][wildcards.task]["dataset"],
        raw_dir="data/raw",
    log:
        "results/logs/prepare_data/{task}.log",
    benchmark:
        "results/benchmarks/prepare_data/{task}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    conda:
        ENV
    script:
        "../scripts/prepare_data.py"
