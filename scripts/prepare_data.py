"""Snakemake script: prepare one task's dataset (rules/data.smk). Imports no torch where the
dataset's reader needs none (the embedded and synthetic datasets): about 2 s less a job."""

from _bootstrap import log_to

from memristor_mat.datasets import prepare_data

log_to(snakemake.log[0])
prepare_data(snakemake.params.dataset, snakemake.output[0], raw_dir=snakemake.params.raw_dir)
