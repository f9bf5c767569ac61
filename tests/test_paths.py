"""Every file pattern lives in memristor_mat.paths: the rules and the library use the same one."""

import re
from pathlib import Path

import pytest

from memristor_mat import paths, pipeline

REPO = Path(__file__).resolve().parents[1]


def test_fill_sets_some_fields_and_keeps_the_others_as_wildcards():
    assert paths.fill(paths.FIGURE, stem="accuracy_vs_noise", ext="png") == "figures/{task}/accuracy_vs_noise.png"
    assert paths.fill(paths.MODEL, task="mnist") == "results/models/mnist/{method}/{setting}/seed~{seed}/model.pt"
    assert paths.fill(paths.PREPARED) == paths.PREPARED


def test_a_models_files_are_the_patterns_formatted_with_its_wildcards():
    run = pipeline.ModelRun("mnist", "qat", 4.0, 14)
    assert run.checkpoint == "results/models/mnist/qat/levels~4/seed~14/model.pt"
    assert run.checkpoint == paths.MODEL.format(**run.wildcards)
    assert run.models_key == "levels~4/seed~14"
    assert pipeline.ModelRun("mnist", "vanilla", 0.0, 15).metrics == "results/models/mnist/vanilla/sigma~0/seed~15/metrics.csv"
    assert pipeline.figure_files("ecg")[0] == "figures/ecg/accuracy_vs_noise.pdf"
    assert pipeline.comparison_files("x") == ["figures/comparisons/x.pdf", "figures/comparisons/x.png",
                                              "results/comparisons/x.csv", "results/comparisons/x.md"]


def _config(evaluate_jobs):
    task = {"seeds": [14, 15], "resources": {"evaluate_jobs": evaluate_jobs},
            "methods": {"vanilla": {}, "mat": {"sigma_train": [0.1, 0.2]}, "qat": {"levels": [4], "seeds": [14]}}}
    return {"tasks": {"mnist": task}}


def test_evaluating_per_model_writes_a_shard_per_model_at_the_models_path():
    config = _config("per_model")
    jobs = pipeline.evaluation_jobs(config, "mnist")
    runs = pipeline.model_runs(config, "mnist")
    assert [job.runs for job in jobs] == [(run,) for run in runs]
    job = pipeline.evaluation_job(config, "mnist", "qat", "levels~4/seed~14")
    assert job.shard("study") == "results/evaluation/mnist/qat/levels~4/seed~14.parquet"
    assert job.shard("devices") == "results/device_evaluation/mnist/qat/levels~4/seed~14.parquet"
    assert paths.log("evaluate", paths.EVALUATION_JOB).format(**job.wildcards) == \
        "results/logs/evaluate/mnist/qat/levels~4/seed~14.log"
    # its finished chunks of draws while it runs: outside the outputs Snakemake deletes on a rerun
    assert job.progress("study") == "results/progress/evaluation/mnist/qat/levels~4/seed~14"
    assert job.progress("devices") == "results/progress/device_evaluation/mnist/qat/levels~4/seed~14"


def test_the_device_figures_follow_the_condition_keys_not_the_names():
    # accuracy against time: every device sweeping t_inference alone (PCM, RRAM, one named
    # anything); against the stuck fraction: the first sweeping p_stuck_*; the heatmap: all
    from memristor_mat.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    config["tasks"]["mnist"]["evaluation"]["devices"] = {
        "chip_a": {"model": "pcm", "conditions": {"t_inference": [1, 86400]}},
        "rram": {"model": "rram", "conditions": {"t_inference": [1, 86400, 172800]}},
        "levels_pcm": {"model": ["levels", "pcm"], "conditions": {"n_levels": [4, 16], "t_inference": [1, 86400]}},
        "pcm_day": {"model": "pcm", "conditions": {"t_inference": [86400]}},
        "faults": {"model": ["stuck_at", "rram"], "conditions": {"p_stuck_off": [0, 0.01], "t_inference": [1]}},
    }
    figures = pipeline.device_figures(config, "mnist")
    assert figures["time_devices"] == ["chip_a", "rram"]  # levels_pcm sweeps two keys, pcm_day none
    assert figures["stuck_device"] == "faults"
    assert figures["devices"] == ["chip_a", "rram", "levels_pcm", "pcm_day", "faults"]
    assert figures["stems"] == [paths.DEVICE_FIGURES[k] for k in ("heatmap", "gain", "time", "stuck_at")]


def test_evaluating_per_method_gives_each_method_one_job_with_all_its_models():
    config = _config("per_method")
    jobs = pipeline.evaluation_jobs(config, "mnist")
    assert [(job.method, len(job.runs)) for job in jobs] == [("mat", 4), ("qat", 1), ("vanilla", 2)]
    # every model in exactly one job, in model order
    assert [run for job in jobs for run in job.runs] == pipeline.model_runs(config, "mnist")
    mat = pipeline.evaluation_job(config, "mnist", "mat", paths.ALL_MODELS)
    assert {run.setting for run in mat.runs} == {0.1, 0.2} and {run.seed for run in mat.runs} == {14, 15}
    assert mat.shard("study") == "results/evaluation/mnist/mat/all_models.parquet"
    # a shard of the other grouping is not a job of this config
    with pytest.raises(ValueError, match="per_method"):
        pipeline.evaluation_job(config, "mnist", "mat", "sigma~0.1/seed~14")


def test_evaluating_per_setting_gives_each_setting_one_job_with_its_seeds():
    config = _config("per_setting")
    jobs = pipeline.evaluation_jobs(config, "mnist")
    assert [(job.method, job.models, [run.seed for run in job.runs]) for job in jobs] == [
        ("mat", "sigma~0.1/all_seeds", [14, 15]), ("mat", "sigma~0.2/all_seeds", [14, 15]),
        ("qat", "levels~4/all_seeds", [14]), ("vanilla", "sigma~0/all_seeds", [14, 15])]
    assert [run for job in jobs for run in job.runs] == pipeline.model_runs(config, "mnist")
    job = pipeline.evaluation_job(config, "mnist", "mat", "sigma~0.2/all_seeds")
    assert job.shard("study") == "results/evaluation/mnist/mat/sigma~0.2/all_seeds.parquet"
    assert paths.log("evaluate", paths.EVALUATION_JOB).format(**job.wildcards) == \
        "results/logs/evaluate/mnist/mat/sigma~0.2/all_seeds.log"
    with pytest.raises(ValueError, match="per_setting"):
        pipeline.evaluation_job(config, "mnist", "mat", paths.ALL_MODELS)


def test_an_unknown_job_unit_is_named():
    config = _config("per_seed")
    with pytest.raises(ValueError, match="per_seed"):
        pipeline.evaluation_jobs(config, "mnist")
    config["tasks"]["mnist"]["resources"]["train_jobs"] = "per_seed"
    with pytest.raises(ValueError, match="per_seed"):
        pipeline.training_groups(config, "mnist")


@pytest.mark.parametrize("unit, folders", [
    ("per_model", None),
    ("per_setting", ["results/models/mnist/mat/sigma~0.1", "results/models/mnist/mat/sigma~0.2",
                     "results/models/mnist/qat/levels~4", "results/models/mnist/vanilla/sigma~0"]),
    ("per_method", ["results/models/mnist/mat", "results/models/mnist/qat", "results/models/mnist/vanilla"]),
    ("per_task", ["results/models/mnist"]),
])
def test_each_training_job_writes_one_folder_that_holds_its_models_at_their_paths(unit, folders):
    config = _config("per_model")
    config["tasks"]["mnist"]["resources"]["train_jobs"] = unit
    runs = pipeline.model_runs(config, "mnist")
    groups = pipeline.training_groups(config, "mnist")
    assert sorted(run for group in groups for run in group) == runs  # every model in exactly one job
    if folders is None:  # a job per model reads and writes the model's own files
        assert groups == [(run,) for run in runs]
        assert pipeline.model_inputs(config, runs) == [run.checkpoint for run in runs]
        return
    assert pipeline.model_inputs(config, runs) == folders
    assert pipeline.model_inputs(config, runs, "metrics") == folders
    for folder, group in zip(folders, groups):
        assert all(run.checkpoint.startswith(folder + "/") for run in group)
        assert pipeline.model_inputs(config, group) == [folder]
    if unit == "per_setting":
        assert pipeline.setting_runs(config, "mnist", "mat", "sigma~0.2") == list(groups[1])
        with pytest.raises(ValueError, match="sigma~0.3"):
            pipeline.setting_runs(config, "mnist", "mat", "sigma~0.3")


def test_evaluating_per_task_gives_the_task_one_job_with_every_model():
    config = _config("per_task")
    [job] = pipeline.evaluation_jobs(config, "mnist")
    assert job.runs == tuple(pipeline.model_runs(config, "mnist"))
    assert pipeline.evaluation_job(config, "mnist", paths.ALL_METHODS, paths.ALL_MODELS) == job
    assert job.shard("study") == "results/evaluation/mnist/all_methods/all_models.parquet"
    assert job.shard("devices") == "results/device_evaluation/mnist/all_methods/all_models.parquet"
    with pytest.raises(ValueError, match="per_task"):
        pipeline.evaluation_job(config, "mnist", "mat", paths.ALL_MODELS)


def test_training_per_task_reads_every_model_from_the_task_folder_in_an_order_one_job_can_train():
    config = _config("per_model")
    config["tasks"]["mnist"]["resources"]["train_jobs"] = "per_task"
    runs = pipeline.model_runs(config, "mnist")
    assert runs[0].method == "mat"  # sorted by name: mat before the vanilla model it fine-tunes
    assert pipeline.model_inputs(config, runs) == ["results/models/mnist"]
    assert pipeline.model_inputs(config, runs, "metrics") == ["results/models/mnist"]
    order = pipeline.training_order(runs)
    assert sorted(order) == runs
    for position, run in enumerate(order):
        start = pipeline.pretrained_run(run)
        assert start is None or order.index(start) < position, run
    # a fine-tuning run whose pretrained model is another job's keeps its place
    mat = [run for run in runs if run.method == "mat"]
    assert pipeline.training_order(mat) == mat


def test_no_rule_spells_a_path_of_its_own():
    # a quoted string naming one of the workflow's folders (results/, figures/, data/) in a rule
    # file would be a second definition of a pattern that memristor_mat.paths owns
    for rule_file in sorted([REPO / "Snakefile", *(REPO / "rules").glob("*.smk")]):
        literals = re.findall(r"""["'](?:results|figures|data)/[^"']*["']""", rule_file.read_text())
        assert not literals, f"{rule_file.name} spells paths itself: {literals}"
