"""Snakemake script: prepare one task's dataset (rules/data.smk)."""

from _bootstrap import log_to

from memristor_mat.runs import prepare_data

log_to(snakemake.log[0])
prepare_data(snakemake.params.dataset, snakemake.output[0], raw_dir=snakemake.params.raw_dir)
