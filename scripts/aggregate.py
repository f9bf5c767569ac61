"""Snakemake script: one task's tidy accuracy table and summary (rules/evaluate.smk)."""

from pathlib import Path

from _bootstrap import log_to

from memristor_mat.aggregation import aggregate

log_to(snakemake.log[0])
out = snakemake.output
aggregate(
    snakemake.input.shards,
    snakemake.params.metrics,
    label=snakemake.params.label,
    accuracy_path=out.accuracy,
    accuracy_csv_path=out.accuracy_csv,
    summary_path=out.summary,
    summary_stem=Path(out.summary_csv).with_suffix(""),
    per_model_stem=Path(out.per_model_csv).with_suffix(""),
    metrics_out_path=out.metrics,
    provenance_path=out.provenance,
    paired_path=out.paired,
    paired_stem=Path(out.paired_csv).with_suffix(""),
    baseline=snakemake.params.baseline,
    interval=snakemake.params.interval["method"],
)
