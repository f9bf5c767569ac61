# Monte-Carlo evaluation: one job per model, per setting, per method or per task (resources.evaluate_jobs;
# all levels x draws loop inside the job), then one aggregate per task that concatenates the
# shards into the tidy table.


rule evaluate:
    priority: EVALUATION_PRIORITY
    wildcard_constraints:
        method=EVALUATION_METHOD,
    input:
        models=evaluation_inputs,
        data=paths.PREPARED,
    output:
        paths.EVALUATION,
    params:
        job=lambda wildcards: pipeline.evaluate_job(config, wildcards.task),
        checkpoints=evaluation_checkpoints,
        progress=lambda wildcards: evaluation_job(wildcards).progress("study"),
    log:
        paths.log("evaluate", paths.EVALUATION_JOB),
    benchmark:
        paths.benchmark("evaluate", paths.EVALUATION_JOB)
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
        shards=lambda wildcards: evaluation_shards(wildcards, "study"),
        metrics=lambda wildcards: pipeline.model_inputs(config, pipeline.model_runs(config, wildcards.task), "metrics"),
    output:
        accuracy=paths.ACCURACY,
        accuracy_csv=paths.ACCURACY_CSV,
        summary=paths.SUMMARY,
        summary_csv=paths.SUMMARY_CSV,
        summary_md=paths.SUMMARY_MD,
        paired=paths.PAIRED,
        paired_csv=report(
            paths.PAIRED_CSV,
            caption="../report/paired_table.rst",
            category="{task}",
            subcategory="tables",
            labels={"table": "paired_differences"},
        ),
        paired_md=paths.PAIRED_MD,
        metrics=paths.TRAINING_METRICS,
        per_model_csv=paths.fill(paths.TABLE, stem=paths.PER_MODEL_TABLE, ext="csv"),
        per_model_md=paths.fill(paths.TABLE, stem=paths.PER_MODEL_TABLE, ext="md"),
        provenance=report(
            paths.PROVENANCE,
            caption="../report/provenance.rst",
            category="{task}",
            subcategory="provenance",
        ),
    params:
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
        metrics=lambda wildcards: [run.metrics for run in pipeline.model_runs(config, wildcards.task)],
        baseline=lambda wildcards: config["tasks"][wildcards.task]["figures"]["baseline_method"],
        interval=lambda wildcards: pipeline.confidence_interval(config, wildcards.task),
    log:
        paths.log("aggregate", "{task}"),
    benchmark:
        paths.benchmark("aggregate", "{task}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    conda:
        ENV
    script:
        "../scripts/aggregate.py"


# The cross-evaluation (evaluation.devices): every model on every device, in the same jobs'
# grouping as the study's evaluation, then one aggregate per task. Only for tasks that list devices.


rule evaluate_devices:
    priority: EVALUATION_PRIORITY
    wildcard_constraints:
        method=EVALUATION_METHOD,
    input:
        models=evaluation_inputs,
        data=paths.PREPARED,
    output:
        paths.DEVICE_EVALUATION,
    params:
        job=lambda wildcards: pipeline.device_evaluation_job(config, wildcards.task),
        checkpoints=evaluation_checkpoints,
        progress=lambda wildcards: evaluation_job(wildcards).progress("devices"),
        kind="devices",
    log:
        paths.log("evaluate_devices", paths.EVALUATION_JOB),
    benchmark:
        paths.benchmark("evaluate_devices", paths.EVALUATION_JOB)
    threads: lambda wildcards: config["tasks"][wildcards.task]["resources"]["evaluate_threads"]
    resources:
        mem_mb=task_resource("evaluate_mem_mb"),
        runtime=task_resource("evaluate_runtime"),
        gpu=task_resource("evaluate_gpu"),
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule aggregate_devices:
    input:
        shards=lambda wildcards: evaluation_shards(wildcards, "devices"),
    output:
        accuracy=paths.DEVICE_ACCURACY,
        accuracy_csv=paths.DEVICE_ACCURACY_CSV,
        summary=paths.DEVICE_SUMMARY,
        summary_csv=report(
            paths.DEVICE_SUMMARY_CSV,
            caption="../report/device_table.rst",
            category="{task}",
            subcategory="devices",
        ),
        paired=paths.DEVICE_PAIRED,
        paired_csv=report(
            paths.DEVICE_PAIRED_CSV,
            caption="../report/paired_table.rst",
            category="{task}",
            subcategory="devices",
            labels={"table": "device_paired_differences"},
        ),
    params:
        baseline=lambda wildcards: config["tasks"][wildcards.task]["figures"]["baseline_method"],
        interval=lambda wildcards: pipeline.confidence_interval(config, wildcards.task),
    log:
        paths.log("aggregate_devices", "{task}"),
    benchmark:
        paths.benchmark("aggregate_devices", "{task}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    conda:
        ENV
    script:
        "../scripts/aggregate_devices.py"


rule evaluate_all:
    input:
        [
            pipeline.task_results(task, "summary.parquet")
            for task in config["tasks"]
        ],
