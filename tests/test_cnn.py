"""CIFAR networks (SPEC §3 CIFAR, §7): torchvision's MobileNetV2 as "cifar_specs", ResNet-20, noise
on every convolution, BatchNorm statistics, Monte-Carlo evaluation, a two-phase run."""

import pytest
import torch
from torch import nn
from torchvision.models import MobileNetV2
from torchvision.models.resnet import BasicBlock

from conftest import killed_in_epoch, standin_splits

from memristor_mat import runs
from memristor_mat.checkpoint import load_checkpoint, model_from_checkpoint
from memristor_mat.datasets import save_prepared
from memristor_mat.evaluation import monte_carlo_accuracy
from memristor_mat.models import architecture_options, build_model
from memristor_mat.noise import GaussianWeightNoise, NoisyModel, noisy_parameter_names
from memristor_mat.pipeline import ModelRun
from memristor_mat.models.cnn import CIFAR_MEAN, CIFAR_STD, ImageClassifier, mobilenet_v2_cifar, resnet_cifar
from memristor_mat.models.mlp import MLP
from memristor_mat.methods.mat import noise_share
from memristor_mat.settings import MonteCarloSettings, TrainingSettings
from memristor_mat.training import train

CPU = torch.device("cpu")
#: a MobileNetV2 small enough for unit tests: stride-2 stem, two one-block stages
TINY_MOBILENET = dict(width_mult=0.25, inverted_residual_setting=[[1, 8, 1, 1], [4, 16, 1, 2]], stem_stride=2)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: MobileNetV2's block table (Sandler et al. 2018, table 2; torchvision's default): expansion t,
#: channels c, repeats n, stride s of a stage's first block
IMAGENET_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1)]
#: "cifar_specs": the 24- and 32-channel stages at stride 1, so that with the stride-1 stem
#: 32 x 32 images reach the classifier as 8 x 8; width 0.4
CIFAR_BLOCKS = [(t, c, n, 1 if c in (24, 32) else s) for t, c, n, s in IMAGENET_BLOCKS]


def rounded_channels(channels: float) -> int:
    """MobileNetV2's channel rounding: to the nearest multiple of 8 (at least 8), one multiple
    more where that lost over 10 % of the scaled width."""
    nearest = max(8, int(channels / 8 + 0.5) * 8)
    return nearest + 8 if nearest < 0.9 * channels else nearest


def mobilenet_layout(blocks, width: float, classes: int):
    """The inverted residuals (in, hidden, out, stride) and the parameter count that the block
    table gives: a 3 x 3 stem of 32 x width channels; per block a 1 x 1 expansion to t x in
    channels (none where t = 1), a 3 x 3 depthwise convolution, a 1 x 1 projection; a 1 x 1
    convolution to 1280 channels; a linear classifier with bias. Convolutions have no bias,
    each is followed by a BatchNorm of 2 parameters a channel."""
    stem = rounded_channels(32 * width)
    count = 3 * 3 * 3 * stem + 2 * stem
    layout, channels = [], stem
    for t, c, n, s in blocks:
        out = rounded_channels(c * width)
        for index in range(n):
            hidden = t * channels
            if t != 1:
                count += channels * hidden + 2 * hidden
            count += 3 * 3 * hidden + 2 * hidden + hidden * out + 2 * out
            layout.append((channels, hidden, out, s if index == 0 else 1))
            channels = out
    last = rounded_channels(1280 * max(1.0, width))
    count += channels * last + 2 * last + last * classes + classes
    return layout, count


def built_layout(model):
    """(in, hidden, out, stride) of each inverted residual of a built MobileNetV2."""
    layout = []
    for block in model.network.features[1:-1]:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        (depthwise,) = [conv for conv in convs if conv.groups > 1]
        layout.append((convs[0].in_channels, depthwise.in_channels, convs[-1].out_channels, depthwise.stride[0]))
    return layout


@pytest.mark.parametrize("classes, documented", [(10, 502_538), (100, 617_828)])
def test_mobilenet_cifar_specs_parameter_counts(classes, documented):
    model = mobilenet_v2_cifar(num_classes=classes)
    layout, count = mobilenet_layout(CIFAR_BLOCKS, 0.4, classes)
    built = built_layout(model)
    assert len(built) == len(layout) == 17
    wrong = [(index, got, want) for index, (got, want) in enumerate(zip(built, layout)) if got != want]
    assert not wrong, f"inverted residuals (index, built (in, hidden, out, stride), cifar_specs'): {wrong}"
    assert model.network.features[0][0].out_channels == 16 and model.network.features[0][0].stride == (1, 1)
    assert n_parameters(model) == count
    assert count == documented  # the count README.md and the paper configs give


def test_mobilenet_is_torchvisions_class_with_stride_one_stem_and_batchnorm():
    model = mobilenet_v2_cifar()
    assert isinstance(model.network, MobileNetV2)
    assert model.network.features[0][0].stride == (1, 1)
    assert model.network.last_channel == 1280
    assert model.network.classifier[0].p == 0.2
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.track_running_stats for m in norms)
    # stride-1 stem: 32 x 32 reaches the classifier as 8 x 8 (two stride-2 stages), not 4 x 4
    features = model.network.features(torch.rand(2, 3, 32, 32))
    assert features.shape[-2:] == (8, 8)


@pytest.mark.parametrize("classes, expected", [(10, 272_474), (100, 278_324)])
def test_resnet20_parameter_counts(classes, expected):
    model = resnet_cifar(depth=20, num_classes=classes)
    assert n_parameters(model) == expected
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9  # 3 stages x 3 basic blocks
    assert [stage[0].conv1.out_channels for stage in model.network.stages] == [16, 32, 64]


@pytest.mark.parametrize("depth", [19, 2, 21])
def test_resnet_rejects_depths_that_are_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match="6n \\+ 2"):
        resnet_cifar(depth=depth)


def test_model_standardises_its_own_input():
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET).eval()
    x = torch.rand(4, 3, 32, 32)
    mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(3, 1, 1)
    torch.testing.assert_close(model(x), model.network((x - mean) / std))
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="one entry per channel"):
        ImageClassifier(nn.Identity(), [0.5, 0.5], [0.2])


def test_architecture_options_need_three_channel_images():
    options = architecture_options("mobilenet_v2_cifar", {"arch": "mobilenet_v2_cifar",
                                                          "inverted_residual_setting": [(1, 8, 1, 1)]}, (3, 32, 32), 10)
    assert options["num_classes"] == 10 and options["inverted_residual_setting"] == [[1, 8, 1, 1]]
    with pytest.raises(ValueError, match="3-channel images"):
        architecture_options("resnet_cifar", {"arch": "resnet_cifar"}, (1, 28, 28), 10)


@pytest.mark.parametrize("factory", [lambda: mobilenet_v2_cifar(**TINY_MOBILENET), lambda: resnet_cifar(depth=8)])
def test_noise_reaches_every_convolution_and_linear_weight(factory):
    torch.manual_seed(0)
    model = factory()
    names = set(noisy_parameter_names(model))
    expected = {f"{module_name}.{param}" for module_name, module in model.named_modules()
                if isinstance(module, (nn.Conv2d, nn.Linear)) for param, _ in module.named_parameters(recurse=False)}
    assert names == expected
    norm_params = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
                   for p, _ in m.named_parameters(recurse=False)}
    assert norm_params and not names & norm_params
    assert norm_params <= set(noisy_parameter_names(model, include_normalization=True))

    # during a noisy forward pass, every crossbar layer computes with perturbed weights
    with torch.no_grad():  # torchvision starts biases at 0, and 0 has no noise (s = sigma * max|b|)
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.bias.uniform_(-0.1, 0.1)
    clean = {name: p.detach().clone() for name, p in model.named_parameters()}
    seen = {}

    def record(module, _inputs):
        for attribute in ("weight", "bias"):
            value = getattr(module, attribute, None)
            if value is not None:
                seen[f"{module_names[module]}.{attribute}"] = value.detach().clone()

    module_names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    NoisyModel(model, GaussianWeightNoise(reference="absmax"), {"sigma": 0.05}).eval()(torch.rand(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert set(seen) == expected
    for name in expected:
        difference = (seen[name] - clean[name]).abs()
        assert difference.max() > 0, f"{name} was not perturbed"
        assert difference.max() <= 6 * 0.05 * clean[name].abs().max(), name  # s = sigma * max|W|


def test_mat_step_updates_batchnorm_statistics_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET).train()
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = norm.running_mean.clone()
    noisy = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.1})
    loss = nn.functional.cross_entropy(noisy(torch.rand(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
    loss.backward()
    assert not torch.equal(norm.running_mean, before)  # statistics of the noisy forward pass
    for name in noisy_parameter_names(model):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("running_stats", [True, False])
def test_evaluation_noises_batchnorm_only_when_its_settings_say_so(running_stats):
    # the original's CIFAR evaluation noised BatchNorm's weights and biases (its training did
    # not): MonteCarloSettings.include_normalization, from evaluation.include_normalization
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET, batchnorm_running_stats=running_stats)
    with torch.no_grad():  # torchvision starts BatchNorm at weight 1, bias 0: make them differ
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    clean = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in norms]
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for include in (False, True):
        seen = []
        hooks = [m.register_forward_pre_hook(lambda m, _: seen.append((m.weight.detach().clone(),
                                                                          m.bias.detach().clone()))) for m in norms]
        settings = MonteCarloSettings(sigma_inference=(0.1,), draws=2, seed=5, noise_options={"reference": "absmax"},
                                      include_normalization=include, draws_per_chunk=1, batch_size=8)
        monte_carlo_accuracy(model, x, y, settings)
        for hook in hooks:
            hook.remove()
        assert len(seen) == 2 * len(norms)  # one pass per draw
        perturbed = [not (torch.equal(w, cw) and torch.equal(b, cb)) for (w, b), (cw, cb) in zip(seen, clean * 2)]
        assert all(perturbed) if include else not any(perturbed), include


def test_batched_draws_equal_one_draw_at_a_time():
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET)
    model.train()
    model(torch.rand(32, 3, 32, 32))  # non-trivial running statistics
    x, y = torch.rand(40, 3, 32, 32), torch.randint(0, 10, (40,))
    common = dict(sigma_inference=(0.0, 0.1), draws=4, seed=5, noise_options={"reference": "absmax"})
    one_at_a_time = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=1, batch_size=40))
    vmapped = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=4, batch_size=16))
    assert one_at_a_time["n_correct"].tolist() == vmapped["n_correct"].tolist()
    assert not model.training  # evaluated in eval mode (running statistics)


def conv_input_layouts(model: nn.Module) -> list[str]:
    """Records the layout of every batch of images (more than one) the model's first convolution receives."""
    seen = []
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first.register_forward_pre_hook(lambda module, args: seen.append(
        "channels_last" if args[0].is_contiguous(memory_format=torch.channels_last) else "contiguous")
        if len(args[0]) > 1 else None)
    return seen


# vmap has no batching rule for one operation of the pooling in channels_last (benchmarks/README.md)
@pytest.mark.filterwarnings("ignore:There is a performance drop because we have not yet implemented the batching rule")
@pytest.mark.parametrize("draws_per_chunk", [1, 3])
def test_channels_last_evaluation_feeds_channels_last_images_and_counts_alike(draws_per_chunk):
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET)
    model(torch.rand(32, 3, 32, 32))  # non-trivial running statistics
    layouts = conv_input_layouts(model)
    x, y = torch.rand(40, 3, 32, 32), torch.randint(0, 10, (40,))
    common = dict(sigma_inference=(0.0, 0.1), draws=3, seed=5, noise_options={"reference": "absmax"},
                  draws_per_chunk=draws_per_chunk, batch_size=16)
    contiguous = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common))
    assert set(layouts) == {"contiguous"}
    layouts.clear()
    channels_last = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, memory_format="channels_last"))
    assert layouts and set(layouts) == {"channels_last"}
    # the same images and weights: the layout may change a convolution's rounding, not a prediction here
    assert channels_last["n_correct"].tolist() == contiguous["n_correct"].tolist()
    assert not x.is_contiguous(memory_format=torch.channels_last)  # the caller's tensor is left as it was


@pytest.mark.parametrize("augmentation", [None, {"horizontal_flip": True, "rotation_degrees": 10}])
def test_channels_last_training_feeds_every_batch_and_test_pass_channels_last(augmentation):
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET, num_classes=2)
    layouts = conv_input_layouts(model)
    result = train(model, standin_splits(), cnn_settings("mat_scratch", epochs=1, augmentation=augmentation,
                                                         memory_format="channels_last"), device=CPU)
    # 96 training images in batches of 32, then the 48 test images in one (eval_batch_size 48)
    assert layouts == ["channels_last"] * 4
    assert 0 <= result.history[-1]["test_accuracy_clean"] <= 1


def test_memory_format_is_checked_and_left_out_of_the_settings_dict_at_its_default():
    from memristor_mat.settings import settings_dict

    with pytest.raises(ValueError, match="memory_format.*'nhwc'"):
        cnn_settings(memory_format="nhwc")
    with pytest.raises(ValueError, match="memory_format.*'nhwc'"):
        MonteCarloSettings(sigma_inference=(0.1,), draws=1, seed=0, memory_format="nhwc")
    assert "memory_format" not in cnn_settings().as_dict()
    settings = cnn_settings(memory_format="channels_last")
    assert settings.as_dict()["memory_format"] == "channels_last"
    assert TrainingSettings.from_dict(settings.as_dict()) == settings
    assert "memory_format" not in settings_dict(MonteCarloSettings(sigma_inference=(0.1,), draws=1, seed=0))


def cnn_settings(method="vanilla", **overrides):
    values = dict(method=method, epochs=2, batch_size=32, seed=3,
                  optimizer={"name": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                  lr_scheduler={"name": "CosineAnnealingLR", "T_max": 2},
                  sigma_train=0.05 if method in ("mat", "mat_scratch") else 0.0,
                  noise_options={"reference": "absmax"},
                  augmentation={"horizontal_flip": True, "rotation_degrees": 10, "crop_padding": 2},
                  eval_batch_size=48)
    values.update(overrides)
    return TrainingSettings(**values)


def test_two_phase_run_pretrains_then_fine_tunes_from_the_pretrained_weights(tmp_path):
    data_path = tmp_path / "standin.npz"
    save_prepared(standin_splits(), data_path)
    model_config = {"arch": "mobilenet_v2_cifar", **TINY_MOBILENET}
    vanilla = ModelRun("standin", "vanilla", 0.0, 3)
    mat = ModelRun("standin", "mat", 0.05, 3)
    vanilla_path, mat_path = tmp_path / "vanilla.pt", tmp_path / "mat.pt"
    runs.train_model(vanilla, cnn_settings(), model_config, data_path=data_path, out_path=vanilla_path,
                     metrics_path=tmp_path / "vanilla.csv", device="cpu", threads=1)
    runs.train_model(mat, cnn_settings("mat", epochs=1), model_config, data_path=data_path, out_path=mat_path,
                     metrics_path=tmp_path / "mat.csv", pretrained_path=vanilla_path, device="cpu", threads=1)
    pretrained, fine_tuned = load_checkpoint(vanilla_path), load_checkpoint(mat_path)
    assert fine_tuned["arch"] == "mobilenet_v2_cifar" and fine_tuned["method"] == "mat"
    assert fine_tuned["settings"]["augmentation"]["rotation_degrees"] == 10
    # fine-tuning moved the pretrained weights a little, not back to a random initialisation
    for name, value in pretrained["state_dict"].items():
        if value.dtype.is_floating_point and name.endswith("weight"):
            drift = (fine_tuned["state_dict"][name] - value).norm() / value.norm()
            assert 0 < drift < 0.5, name
    rebuilt = model_from_checkpoint(fine_tuned)
    assert isinstance(rebuilt, ImageClassifier)
    assert not (tmp_path / "mat.pt.resume").exists()


def test_interrupted_cnn_run_with_augmentation_resumes_to_the_same_weights(tmp_path, monkeypatch):
    def model():
        torch.manual_seed(1)
        return build_model("resnet_cifar", depth=8, widths=[4, 8, 8], num_classes=2)

    data, config = standin_splits(), cnn_settings("mat_scratch", epochs=3, lr_scheduler=None)
    identity = {"arch": "resnet_cifar", "arch_options": {}}
    uninterrupted = train(model(), data, config, device=CPU, resume_path=tmp_path / "a.resume", resume_extra=identity)

    with killed_in_epoch(monkeypatch, 3), pytest.raises(KeyboardInterrupt):
        train(model(), data, config, device=CPU, resume_path=tmp_path / "b.resume", resume_extra=identity)
    # resumed with two DataLoader workers: the augmented batches do not depend on them
    resumed = train(model(), data, config, device=CPU, resume_path=tmp_path / "b.resume", resume_extra=identity,
                    data_workers=2)
    assert resumed.resumed_from_epoch == 2
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key  # BatchNorm statistics included


def test_noise_thread_gets_a_core_only_where_random_numbers_matter():
    mlp = MLP()  # 101,632 weights, 2 FLOPs per weight and sample: drawing the noise is a third of a step
    assert noise_share(mlp, torch.rand(1, 28, 28), 32, 101_632) > 0.1
    cnn = mobilenet_v2_cifar().train()
    norm = next(m for m in cnn.modules() if isinstance(m, nn.BatchNorm2d))
    before = norm.running_mean.clone()
    share = noise_share(cnn, torch.rand(3, 32, 32), 128, n_parameters(cnn))
    assert share < 0.01  # convolutions reuse each weight at every pixel
    assert cnn.training and torch.equal(norm.running_mean, before)  # the probe left no trace


def test_batchnorm_without_running_statistics_as_the_original():
    # SPEC §3 CIFAR: the original's BatchNorm kept no running statistics, so it normalises with
    # the batch's own statistics in evaluation too; the vmapped Monte-Carlo path must agree
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(**TINY_MOBILENET, batchnorm_running_stats=False)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.track_running_stats for m in norms)
    assert all(m.running_mean is None for m in norms)
    model.eval()
    x = torch.rand(8, 3, 32, 32)
    # batch statistics in eval mode: an image's logits depend on the rest of its batch
    alone = model(x[:4])
    assert not torch.allclose(alone, model(torch.cat([x[:4], 3 * x[4:]]))[:4])
    y = torch.randint(0, 10, (8,))
    common = dict(sigma_inference=(0.1,), draws=3, seed=5, noise_options={"reference": "absmax"}, batch_size=8)
    one = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=1))
    stacked = monte_carlo_accuracy(model, x, y, MonteCarloSettings(**common, draws_per_chunk=3))
    assert one["n_correct"].tolist() == stacked["n_correct"].tolist()
    with pytest.raises(ValueError, match="batchnorm_running_stats"):
        mobilenet_v2_cifar(batchnorm_running_stats="no")
