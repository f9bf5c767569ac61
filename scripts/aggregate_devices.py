"""Snakemake script: one task's device cross-evaluation table and summary (rules/evaluate.smk)."""

from _bootstrap import log_to

from memristor_mat.aggregation import aggregate_devices

log_to(snakemake.log[0])
out = snakemake.output
aggregate_devices(
    snakemake.input.shards,
    accuracy_path=out.accuracy,
    accuracy_csv_path=out.accuracy_csv,
    summary_path=out.summary,
    summary_csv_path=out.summary_csv,
    paired_path=out.paired,
    paired_csv_path=out.paired_csv,
    baseline=snakemake.params.baseline,
    interval=snakemake.params.interval["method"],
)
