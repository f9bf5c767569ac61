# Monte-Carlo evaluation: one job per model (all levels x draws loop inside the job), then
# one aggregate per task that concatenates the shards into the tidy table.


rule evaluate:
    input:
        model="results/models/{task}/{method}/{setting}/seed~{seed}/model.pt",
        data="results/prepared/{task}.npz",
    output:
        "results/evaluation/{task}/{method}/{setting}/seed~{seed}.parquet",
    params:
        job=lambda wildcards: pipeline.evaluate_job(config, wildcards.task),
    log:
        "results/logs/evaluate/{task}/{method}/{setting}/seed~{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{task}/{method}/{setting}/seed~{seed}.tsv"
    threads: lambda wildcards: config["tasks"][wildcards.task]["resources"]["evaluate_threads"]
    resources:
        mem_mb=task_resource("evaluate_mem_mb"),
        runtime=task_resource("evaluate_runtime"),
        gpu=task_resource("evaluate_gpu"),
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule aggregate:
    input:
        shards=lambda wildcards: runs_of_task(wildcards, "evaluation"),
        metrics=lambda wildcards: runs_of_task(wildcards, "metrics"),
    output:
        accuracy="results/{task}/accuracy.parquet",
        accuracy_csv="results/{task}/accuracy.csv",
        summary="results/{task}/summary.parquet",
        summary_csv="results/{task}/summary.csv",
        summary_md="results/{task}/summary.md",
        metrics="results/{task}/training_metrics.csv",
        per_model_csv="results/{task}/tables/per_model.csv",
        per_model_md="results/{task}/tables/per_model.md",
        provenance=report(
            "results/{task}/provenance.csv",
            caption="../report/provenance.rst",
            category="{task}",
            subcategory="provenance",
        ),
    params:
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
    log:
        "results/logs/aggregate/{task}.log",
    benchmark:
        "results/benchmarks/aggregate/{task}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    conda:
        ENV
    script:
        "../scripts/aggregate.py"


rule evaluate_all:
    input:
        [
            pipeline.task_results(task, "summary.parquet")
            for task in config["tasks"]
        ],
