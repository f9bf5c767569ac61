"""Snakemake script: one training job (rules/train.smk): one model, a method's models or a task's."""

from _bootstrap import log_to

from memristor_mat.runs import train_models

log_to(snakemake.log[0])
train_models(snakemake.params.jobs, data_path=snakemake.input.data, threads=snakemake.threads)
