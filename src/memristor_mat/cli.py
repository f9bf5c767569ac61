"""Command line for single runs outside Snakemake: the same library calls the workflow makes.

    memristor-mat validate --config config.yaml
    memristor-mat list     --config config.yaml
    memristor-mat prepare  --config config.yaml --task mnist --out results/prepared/mnist.npz
    memristor-mat train    --config config.yaml --task mnist --method mat --sigma-train 0.2 --seed 14 \\
                           --data results/prepared/mnist.npz --pretrained <vanilla model.pt> --out model.pt
    memristor-mat evaluate --config config.yaml --checkpoint model.pt --data results/prepared/mnist.npz \\
                           --out accuracy.parquet [--devices]
    memristor-mat summarise vanilla.parquet mat.parquet --out results/mine [--baseline vanilla]
    memristor-mat precision results/mnist/accuracy.parquet --models 5 10 --draws 100 400 [--baseline vanilla]
    memristor-mat build-native
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, pipeline
from . import methods as registry
from .aggregation import plan_precision, summarise_tables, write_csv
from .config import ConfigError, load_config
from .datasets import load_prepared, prepare_data
from .datasets.errors import DataError
from .io import check_output_path
from .reporting.summary import INTERVALS, plan_text
from .settings import MonteCarloSettings, TrainingSettings

# torch (about 2 s) is imported by the commands that train, evaluate or build: the others (--help,
# validate, list, prepare of the embedded and synthetic datasets, summarise, precision) start without it.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memristor-mat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", required=True, help="pipeline config (YAML), e.g. config.yaml")
        return sub

    command("validate", "check a config against the schema and the library")
    command("list", "list every model the config asks for, with its checkpoint path")
    prepare = command("prepare", "prepare one task's dataset (.npz)")
    prepare.add_argument("--task", required=True)
    prepare.add_argument("--out", required=True)
    prepare.add_argument("--raw-dir", default="data/raw", help="where downloads go (default: data/raw)")

    train = command("train", "train one model")
    train.add_argument("--task", required=True)
    train.add_argument("--method", required=True, choices=registry.method_names())
    for setting in registry.SETTINGS.values():  # the value of the method's swept setting
        users = ", ".join(m.name for m in registry.METHODS.values() if m.sweep == setting.name)
        train.add_argument(f"--{setting.name.replace('_', '-')}", type=int if setting.integer else float,
                           help=f"the model's {setting.name} ({users})")
    train.add_argument("--seed", type=int, required=True)
    train.add_argument("--data", required=True, help="prepared dataset (.npz)")
    train.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    train.add_argument("--metrics", help="per-epoch metrics CSV (default: beside --out)")
    train.add_argument("--pretrained", help="vanilla checkpoint that mat fine-tunes")
    train.add_argument("--threads", type=int, default=1)

    evaluate = command("evaluate", "Monte-Carlo evaluation of one checkpoint -> Parquet: the study's inference "
                                   "levels, or with --devices the cross-evaluation on the task's devices")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="prepared dataset (.npz)")
    evaluate.add_argument("--out", required=True, help="Parquet table to write")
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument("--task", help="whose evaluation settings apply (default: the checkpoint's task)")
    evaluate.add_argument("--devices", action="store_true",
                          help="evaluate on every device of the task's evaluation.devices (the workflow's "
                               "evaluate_devices) instead of at the inference noise levels")
    summarise = commands.add_parser(
        "summarise", help="the workflow's task tables from evaluate's tables: tidy table, summary, per model, "
                          "paired differences against a baseline",
        description="The tables the workflow writes for a task (results/<task>/), from tables written by "
                    "`evaluate` (all of the study's levels, or all --devices): the tidy table, its summary, a "
                    "table per model and every configuration against the baseline, paired by seed and draw.")
    summarise.add_argument("tables", nargs="+", help="Parquet tables written by `memristor-mat evaluate`")
    summarise.add_argument("--out", required=True, help="folder to write the tables into")
    summarise.add_argument("--baseline", default="vanilla",
                           help="the method the others are paired with (default: vanilla)")
    summarise.add_argument("--label", default="", help="a label for the provenance table")
    summarise.add_argument("--interval", choices=list(INTERVALS), default="t",
                           help="the 95 %% CIs: t intervals with the models as the units (default) or SPEC §4's "
                                "hierarchical bootstrap (the workflow's figures.confidence_interval)")
    precision = commands.add_parser(
        "precision", help="how precise the means would be with other numbers of models and draws: "
                          "variance components and predicted standard errors",
        description="From evaluation tables (evaluate's, or a task's results/<task>/accuracy.parquet or .csv): how the "
                    "spread divides between models, draws shared by every model (the same chips) and the rest, "
                    "and the standard error of each mean (points) that a study of --models x --draws would have.")
    precision.add_argument("tables", nargs="+", help="tables (Parquet or CSV) written by `memristor-mat evaluate` or "
                                                     "the workflow")
    precision.add_argument("--models", type=int, nargs="+", default=[3, 5, 10], help="trained models per "
                           "configuration to predict for (default: 3 5 10)")
    precision.add_argument("--draws", type=int, nargs="+", default=[100, 400],
                           help="draws per model to predict for (default: 100 400)")
    precision.add_argument("--baseline", help="plan the paired differences from this method instead of the accuracies")
    precision.add_argument("--out", help="CSV to write the plan to (one row per configuration x condition x design)")
    commands.add_parser(
        "build-native", help="build the package's C++ operators now (make install runs it; else the first job "
                             "that uses them builds them)",
        description="Builds the package's C++ operators (the spiking networks' time loops, the clipping's sums, "
                    "the noise's normals, Adam's update, the Gaussian weight noise) into torch's extension cache "
                    "(TORCH_EXTENSIONS_DIR), or loads them from it, and says whether the normals drawn, the Adam "
                    "updates and the noisy weights made by them are torch's here, and whether the tanh twin's "
                    "evaluation in C++ gives Python's loop's numbers. A failed build is reported, not "
                    "an error (torch's code then runs, with the same numbers), except under MEMRISTOR_MAT_NATIVE=cpp.")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "build-native":
        from . import native, normals, optim
        from .models import spiking_loop
        from .noise import gaussian

        print(native.build())
        if native.module() is not None:
            print(normals.drawer())
            print(optim.updater())
            print(gaussian.applier())
            print(spiking_loop.evaluator())
        return
    if args.command == "summarise":  # tables only: no config
        out = summarise_tables(args.tables, args.out, baseline=args.baseline, label=args.label,
                               interval=args.interval)
        print(f"wrote the tables of {len(args.tables)} evaluation table(s) to {out}/")
        return
    if args.command == "precision":
        if args.out is not None:
            check_output_path(args.out)
        plan = plan_precision(args.tables, models=args.models, draws=args.draws, baseline=args.baseline)
        print(plan_text(plan))
        if args.out is not None:
            write_csv(plan, args.out)
            print(f"wrote {args.out}")
        return
    config = load_config(args.config)
    for output in (getattr(args, "out", None), getattr(args, "metrics", None)):
        if output is not None:
            check_output_path(output)
    if args.command == "validate":
        print(f"{args.config}: valid; {len(pipeline.model_runs(config))} models")
    elif args.command == "list":
        for run in pipeline.model_runs(config):
            print(f"{run.task}\t{run.method}\t{run.setting_dir}\t{run.seed}\t{run.checkpoint}")
    elif args.command == "prepare":
        prepare_data(config["tasks"][_task(config, args.task)]["dataset"], args.out, raw_dir=args.raw_dir)
    elif args.command == "train":
        from . import runs

        sweep = registry.method(args.method).sweep
        value = 0.0 if sweep is None else getattr(args, sweep)
        if value is None:
            raise ConfigError(f"{args.method} models differ by {sweep}: give --{sweep.replace('_', '-')}")
        run = pipeline.ModelRun(_task(config, args.task), args.method, float(value), args.seed)
        job = pipeline.train_job(config, run)
        start = pipeline.pretrained_run(run)
        if start is not None and args.pretrained is None:
            raise ConfigError(f"{run.method} fine-tunes the {start.method!r} model of seed {run.seed}: give its "
                              f"checkpoint with --pretrained")
        data = load_prepared(args.data)
        expected = config["tasks"][run.task]["dataset"]["name"]
        if data.name != expected:
            raise DataError(f"{args.data} holds dataset {data.name!r}, but task {run.task!r} trains on {expected!r}: "
                            f"prepare it with `memristor-mat prepare --task {run.task}`")
        runs.train_model(
            run, TrainingSettings.from_dict(job["settings"]), job["model"], data=data,
            data_path=args.data, out_path=args.out,
            metrics_path=args.metrics or str(Path(args.out).with_name("metrics.csv")),
            pretrained_path=args.pretrained, device=job["device"], threads=args.threads,
        )
    elif args.command == "evaluate":
        from . import runs
        from .checkpoint import load_checkpoint

        task = _task(config, args.task or load_checkpoint(args.checkpoint).get("task"))
        kind = "devices" if args.devices else "study"
        job = (pipeline.device_evaluation_job if args.devices else pipeline.evaluate_job)(config, task)
        table = runs.evaluate_model(args.checkpoint, MonteCarloSettings(**job["settings"]), data_path=args.data,
                                    out_path=args.out, device=job["device"], threads=args.threads, kind=kind)
        if args.devices:  # a row per device condition: the columns between the device and the draw
            columns = list(table.columns)
            by = ["device", *columns[columns.index("noise_model") + 1:columns.index("draw")]]
        else:
            by = ["sigma_inference"]
        summary = table.groupby(by, sort=False, dropna=False)["accuracy"].agg(["mean", "median", "count"])
        print(summary.to_string())


def _task(config: dict, task: str) -> str:
    if task not in config["tasks"]:
        raise ConfigError(f"task {task!r} is not in the config; it has {sorted(config['tasks'])}")
    return task


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except Exception as error:
        if not isinstance(error, _reported_errors()):
            raise
        print(f"memristor-mat {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _reported_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports in one line, without a traceback: a bad config, data,
    checkpoint or value, a failed build. The checkpoint's and the build's are those of modules that
    import torch: a command that did not import them cannot have raised them."""
    errors: list[type[Exception]] = [ConfigError, DataError, ValueError]
    for module, name in (("memristor_mat.checkpoint", "CheckpointError"), ("memristor_mat.native", "BuildError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


if __name__ == "__main__":
    sys.exit(main())
