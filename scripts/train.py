"""Snakemake script: train one model (rules/train.smk)."""

from _bootstrap import log_to

from memristor_mat.pipeline import ModelRun
from memristor_mat.runs import train_model
from memristor_mat.settings import TrainingSettings

log_to(snakemake.log[0])
w, job = snakemake.wildcards, snakemake.params.job
train_model(
    ModelRun.from_wildcards(w.task, w.method, w.setting, w.seed),
    TrainingSettings.from_dict(job["settings"]),
    job["model"],
    data_path=snakemake.input.data,
    out_path=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    pretrained_path=snakemake.input.pretrained[0] if snakemake.input.pretrained else None,
    device=job["device"],
    threads=snakemake.threads,
)
