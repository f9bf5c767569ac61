"""Snakemake script: fetch the raw files of one key, for every task that reads them (rules/data.smk).
Imports no torch where the fetcher needs none (the synthetic ECG records, MIT-BIH)."""

from _bootstrap import log_to

from memristor_mat.datasets.raw import RawData, fetch_raw_data

log_to(snakemake.log[0])
fetch_raw_data(RawData(**snakemake.params.raw), snakemake.output[0], raw_dir=snakemake.params.raw_dir)
