"""Snakemake script: Monte-Carlo evaluation of one job's models (rules/evaluate.smk): the study's
inference levels, or the cross-evaluation on the task's devices where the rule says ``kind="devices"``."""

from _bootstrap import log_to

from memristor_mat.runs import evaluate_models
from memristor_mat.settings import MonteCarloSettings

log_to(snakemake.log[0])
job = snakemake.params.job
evaluate_models(
    snakemake.params.checkpoints,
    MonteCarloSettings(**job["settings"]),
    data_path=snakemake.input.data,
    out_path=snakemake.output[0],
    device=job["device"],
    threads=snakemake.threads,
    kind=getattr(snakemake.params, "kind", "study"),
    # a quarter of the job's memory for the draws' normals shared by its models
    normals_cache_mb=snakemake.resources.mem_mb // 4,
    progress_dir=snakemake.params.progress,
)
