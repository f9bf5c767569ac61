# Training: vanilla pretraining per seed, then each method x setting (sigma~0.2, levels~4, ...) x seed:
# one job per model (`train`), per setting with its seeds (`train_setting`), per method
# (`train_method`) or per task (`train_task`), by the task's resources.train_jobs. A killed job
# resumes each model from its last epoch (paths.RESUME) when it is rerun.


rule train:
    priority: TRAINING_PRIORITY
    input:
        data=paths.PREPARED,
        pretrained=lambda wildcards: pretrained_inputs([run_of(wildcards)]),
    output:
        model=paths.MODEL,
        metrics=paths.METRICS,
    params:
        jobs=lambda wildcards: pipeline.training_jobs(config, [run_of(wildcards)]),
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


rule train_method:
    priority: TRAINING_PRIORITY
    input:
        data=paths.PREPARED,
        pretrained=lambda wildcards: pretrained_inputs(method_runs(wildcards)),
    output:
        directory(paths.METHOD_DIR),
    params:
        jobs=lambda wildcards: pipeline.training_jobs(config, method_runs(wildcards)),
    log:
        paths.log("train", paths.METHOD_JOB),
    benchmark:
        paths.benchmark("train", paths.METHOD_JOB)
    threads: lambda wildcards: config["tasks"][wildcards.task]["resources"]["train_threads"]
    resources:
        mem_mb=task_resource("train_mem_mb"),
        runtime=task_resource("train_runtime"),
        gpu=task_resource("gpu"),
    conda:
        ENV
    script:
        "../scripts/train.py"


# the same job as train_method, over the seeds of one setting of a method
use rule train_method as train_setting with:
    input:
        data=paths.PREPARED,
        pretrained=lambda wildcards: pretrained_inputs(setting_runs(wildcards)),
    output:
        directory(paths.SETTING_DIR),
    params:
        jobs=lambda wildcards: pipeline.training_jobs(config, setting_runs(wildcards)),
    log:
        paths.log("train", paths.SETTING_JOB),
    benchmark:
        paths.benchmark("train", paths.SETTING_JOB)


# the same job as train_method, over every model of the task; the models it fine-tunes from are
# its own, trained first in the same process, so its only input is the data
use rule train_method as train_task with:
    input:
        data=paths.PREPARED,
    output:
        directory(paths.TASK_MODELS_DIR),
    params:
        jobs=lambda wildcards: pipeline.training_jobs(
            config, pipeline.training_order(pipeline.model_runs(config, wildcards.task))
        ),
    log:
        paths.log("train", paths.TASK_JOB),
    benchmark:
        paths.benchmark("train", paths.TASK_JOB)


rule pretrain_all:
    input:
        lambda wildcards: pipeline.model_inputs(
            config, [run for run in pipeline.model_runs(config) if run.method == "vanilla"]
        ),


rule train_all:
    input:
        pipeline.model_inputs(config, pipeline.model_runs(config)),
