"""Snakemake script: one heartbeat through the recurrent networks (rules/figures.smk)."""

from _bootstrap import log_to

from memristor_mat.datasets import load_prepared
from memristor_mat.runs import write_parquet
from memristor_mat.traces import heartbeat_traces

log_to(snakemake.log[0])
table = heartbeat_traces(
    list(snakemake.params.checkpoints),
    load_prepared(snakemake.input.data),
    snakemake.params.dataset,
    snakemake.params.raw_dir,
)
write_parquet(table, snakemake.output[0], {"checkpoints": ",".join(snakemake.params.checkpoints)})
