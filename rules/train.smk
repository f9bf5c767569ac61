# Training: vanilla pretraining per seed, then each method x setting (sigma~0.2, levels~4, ...) x seed.
# A killed job resumes from `<model>.resume` (end-of-epoch state) when it is rerun.


rule train:
    input:
        data=paths.PREPARED,
        pretrained=pretrained_checkpoint,
    output:
        model=paths.MODEL,
        metrics=paths.METRICS,
    params:
        job=lambda wildcards: pipeline.train_job(config, run_of(wildcards)),
    log:
        paths.log("train", paths.MODEL_JOB),
    benchmark:
        paths.benchmark("train", paths.MODEL_JOB)
    threads: lambda wildcards: config["tasks"][wildcards.task]["resources"]["train_threads"]
    resources:
        mem_mb=task_resource("train_mem_mb"),
        runtime=task_resource("train_runtime"),
        gpu=task_resource("gpu"),
    conda:
        ENV
    script:
        "../scripts/train.py"


rule pretrain_all:
    input:
        lambda wildcards: [
            run.checkpoint
            for run in pipeline.model_runs(config)
            if run.method == "vanilla"
        ],


rule train_all:
    input:
        [run.checkpoint for run in pipeline.model_runs(config)],
