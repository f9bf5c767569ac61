"""Monte-Carlo evaluation (SPEC §4): batched draws, reproducibility, common random numbers."""

import pytest
import torch
from torch import nn

from memristor_mat.evaluation import (
    NormalsCache,
    clean_accuracy,
    correct_with_weights,
    device_accuracy,
    monte_carlo_accuracy,
    standard_normal_draws,
)
from memristor_mat.models.mlp import MLP
from memristor_mat.noise import GaussianWeightNoise, noisy_parameter_names
from memristor_mat.settings import DeviceSettings, MonteCarloSettings

LEVELS = (0.0, 0.05, 0.2)


def data(n=300, shape=(1, 6, 6), classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g)


def mlp(bias=False, seed=0):
    torch.manual_seed(seed)
    return MLP(input_size=36, hidden_sizes=[16], num_classes=4, bias=bias)


def cnn(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    model.train()
    model(torch.randn(16, 1, 6, 6))  # give BatchNorm non-trivial running statistics
    return model.eval()


def settings(**overrides):
    values = dict(sigma_inference=LEVELS, draws=7, seed=11, draws_per_chunk=3, batch_size=128)
    values.update(overrides)
    return MonteCarloSettings(**values)


@pytest.mark.parametrize("make_model", [lambda: mlp(bias=True), cnn], ids=["mlp", "cnn-batchnorm"])
def test_batched_draws_equal_one_draw_at_a_time(make_model):
    model = make_model()
    x, y = data()
    table = monte_carlo_accuracy(model, x, y, settings())
    names = noisy_parameter_names(model)
    params = dict(model.named_parameters())
    shapes = {n: params[n].shape for n in names}
    for level in LEVELS:
        noise = GaussianWeightNoise()
        for draw in (range(7) if level > 0 else [0]):
            normals = standard_normal_draws(shapes, 1, 11, [draw])
            weights = {n: noise.apply(params[n].detach(), normals[n][0], {"sigma": level}) for n in names}
            expected = correct_with_weights(model, weights, x, y, batch_size=1000)
            row = table[(table.sigma_inference == level) & (table.draw == draw)]
            assert row.n_correct.item() == expected, (level, draw)


def test_table_layout_and_level_zero_is_the_clean_model():
    model = mlp()
    x, y = data()
    table = monte_carlo_accuracy(model, x, y, settings())
    assert list(table.columns) == ["sigma_inference", "draw", "n_correct", "n_test", "accuracy"]
    # the noise-free level is one row per model (draw 0), the noisy ones one row per draw
    assert len(table) == 1 + (len(LEVELS) - 1) * 7
    assert (table.n_test == len(y)).all()
    clean = table[table.sigma_inference == 0]
    assert clean.draw.tolist() == [0]
    assert clean.accuracy.item() == clean_accuracy(model, x, y)
    noisy = table[table.sigma_inference == 0.2]
    assert noisy.accuracy.nunique() > 1  # draws differ from one another


def test_chunking_and_batching_do_not_change_results():
    model = mlp(bias=True)
    x, y = data()
    reference = monte_carlo_accuracy(model, x, y, settings(draws_per_chunk=1, batch_size=1000))
    other = monte_carlo_accuracy(model, x, y, settings(draws_per_chunk=7, batch_size=50))
    assert reference.equals(other)


def test_same_seed_same_numbers_other_seed_other_numbers():
    model = mlp()
    x, y = data()
    first = monte_carlo_accuracy(model, x, y, settings())
    assert first.equals(monte_carlo_accuracy(model, x, y, settings()))
    other = monte_carlo_accuracy(model, x, y, settings(seed=12))
    assert not first.equals(other)


def test_common_random_numbers_across_models():
    # A bias-free ReLU network with every weight doubled predicts exactly as before, and its
    # noise (sigma * 2max|W| * z) doubles too; so with the same draws z, every draw's accuracy
    # must be identical. Independent draws would make them differ.
    model = mlp()
    doubled = mlp()
    with torch.no_grad():
        for p in doubled.parameters():
            p.mul_(2)
    x, y = data(n=500)
    a = monte_carlo_accuracy(model, x, y, settings(sigma_inference=(0.3,), draws=10))
    b = monte_carlo_accuracy(doubled, x, y, settings(sigma_inference=(0.3,), draws=10))
    assert a.n_correct.nunique() > 1
    assert a.n_correct.tolist() == b.n_correct.tolist()
    c = monte_carlo_accuracy(doubled, x, y, settings(sigma_inference=(0.3,), draws=10, seed=99))
    assert a.n_correct.tolist() != c.n_correct.tolist()


def test_normals_depend_only_on_seed_and_draw_index():
    shapes = {"w": torch.Size([4, 5])}
    together = standard_normal_draws(shapes, 1, 3, [0, 1, 2])
    alone = standard_normal_draws(shapes, 1, 3, [2])
    assert torch.equal(together["w"][2], alone["w"][0])
    assert not torch.equal(together["w"][0], together["w"][1])


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="draws"):
        settings(draws=0)
    with pytest.raises(ValueError, match="levels"):
        settings(sigma_inference=(-0.1,))


def test_draws_are_made_on_cpu_generators_whatever_the_device(monkeypatch):
    # CUDA's generator gives other numbers than the CPU's for one seed: draws must come from CPU
    # generators and be moved, so a GPU job sees draw d exactly as a CPU job does (SPEC §4).
    import memristor_mat.evaluation as evaluation

    seen_devices = []
    real_generator = evaluation.generator
    monkeypatch.setattr(evaluation, "generator",
                        lambda seed, device="cpu": (seen_devices.append(str(device)), real_generator(seed, device))[1])
    shapes = {"w": torch.Size([4, 5]), "b": torch.Size([3])}
    on_cpu = standard_normal_draws(shapes, 1, 3, [0, 1])
    # the "meta" device stands for an accelerator: the transfer runs, the generation stays on CPU
    moved = standard_normal_draws(shapes, 1, 3, [0, 1], device="meta")
    assert set(seen_devices) == {"cpu"}
    for name, shape in shapes.items():
        assert moved[name].device.type == "meta" and moved[name].shape == (2, 1, *shape)
        expected = torch.stack([torch.randn((1, *shape), generator=torch.Generator().manual_seed(
            evaluation.derive_seed(3, "monte-carlo", d))) for d in (0, 1)])
        if name == "b":  # "w" is drawn first from each draw's generator, then "b"
            expected = torch.stack([_second_tensor(shapes, d) for d in (0, 1)])
        assert torch.equal(on_cpu[name], expected)


def _second_tensor(shapes, draw):
    from memristor_mat.evaluation import derive_seed

    g = torch.Generator().manual_seed(derive_seed(3, "monte-carlo", draw))
    torch.randn((1, *shapes["w"]), generator=g)
    return torch.randn((1, *shapes["b"]), generator=g)


# --------------------------------------------------------------------------- the cross-evaluation

DEVICES = (
    DeviceSettings("gaussian", "gaussian", {}, ({"sigma": 0.05},)),
    DeviceSettings("pcm", "pcm", {"drift_compensation": False}, ({"t_inference": 1.0}, {"t_inference": 3.15e7})),
    DeviceSettings("stuck", "stuck_at", {}, ({"p_stuck_off": 0.0, "p_stuck_on": 0.0}, {"p_stuck_off": 0.1, "p_stuck_on": 0.0})),
)


def test_models_sharing_a_normals_cache_get_the_tables_they_get_alone():
    # every device model of the registry, each reading the cached normals several times: a model
    # that wrote into them would change the next model's numbers
    devices = (*DEVICES, *(DeviceSettings.from_config(name, device) for name, device in {
        "pcm_compensated": {"model": "pcm", "conditions": {"t_inference": [1, 86400]}},
        "rram": {"model": "rram", "conditions": {"t_inference": [1, 86400]}},
        "levels_pcm": {"model": ["levels", "pcm"], "conditions": {"n_levels": [4], "t_inference": [3600]}},
    }.items()))
    x, y = data()
    cache = NormalsCache(2**30)
    for seed in (0, 1, 2):
        shared = device_accuracy(mlp(seed=seed), x, y, settings(devices=devices), cache)
        assert shared.equals(device_accuracy(mlp(seed=seed), x, y, settings(devices=devices)))
        study = monte_carlo_accuracy(mlp(seed=seed), x, y, settings(), cache)
        assert study.equals(monte_carlo_accuracy(mlp(seed=seed), x, y, settings()))
    # 3 chunks of draws (7 in chunks of 3) per number of normals per weight: drawn by the first
    # model, taken from the cache by the others
    drawn = cache.misses
    assert drawn % 3 == 0 and cache.hits > 2 * drawn and cache.used_bytes > 0


def test_normals_cache_keeps_what_fits_and_draws_the_rest_again():
    shapes = {"w": torch.Size([4, 5])}
    cache = NormalsCache(3 * 20 * 4)  # three draws of one normal per weight, float32
    first = cache.draws(shapes, 1, 7, [0, 1, 2])
    assert cache.draws(shapes, 1, 7, [0, 1, 2]) is first and (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(first["w"], standard_normal_draws(shapes, 1, 7, [0, 1, 2])["w"])
    # another seed, other draws, more normals per weight: other numbers, beyond the budget
    for args in ((1, 8, [0, 1, 2]), (1, 7, [3, 4, 5]), (2, 7, [0, 1, 2])):
        again = cache.draws(shapes, *args)
        assert torch.equal(again["w"], standard_normal_draws(shapes, *args)["w"])
        assert cache.draws(shapes, *args) is not again  # not kept: drawn afresh
    assert cache.used_bytes == 3 * 20 * 4 and cache.hits == 1
    with pytest.raises(ValueError, match="budget"):
        NormalsCache(-1)


def test_device_table_has_one_column_per_condition_key_and_identity_conditions_once():
    model = mlp()
    x, y = data()
    table = device_accuracy(model, x, y, settings(devices=DEVICES))
    assert list(table.columns) == ["device", "noise_model", "sigma_inference", "t_inference", "p_stuck_off",
                                   "p_stuck_on", "draw", "n_correct", "n_test", "accuracy"]
    assert table.groupby("device").size().to_dict() == {"gaussian": 7, "pcm": 2 * 7, "stuck": 1 + 7}
    pcm = table[table.device == "pcm"]
    assert pcm.sigma_inference.isna().all() and pcm.p_stuck_off.isna().all()
    # no stuck device is the clean model: one row, the clean accuracy
    clean = table[(table.device == "stuck") & (table.p_stuck_off == 0)]
    assert len(clean) == 1 and clean.accuracy.item() == pytest.approx(clean_accuracy(model, x, y))


def test_gaussian_device_is_the_study_and_draws_are_common_to_every_model():
    x, y = data()
    device = device_accuracy(mlp(), x, y, settings(devices=DEVICES[:1]))
    study = monte_carlo_accuracy(mlp(), x, y, settings())
    # the same draws (seed, draw) at the same sigma: the same numbers
    assert device.n_correct.tolist() == study[study.sigma_inference == 0.05].n_correct.tolist()


def test_a_device_draw_is_one_chip_read_at_every_time():
    # the normals of draw d do not depend on the condition: with the read noise and drift of the
    # same devices, the accuracy at t changes only through t (checked through the weights)
    model = mlp()
    names = noisy_parameter_names(model)
    params = dict(model.named_parameters())
    shapes = {n: params[n].shape for n in names}
    from memristor_mat.noise import make_noise_model

    noise = make_noise_model("pcm", {"drift_compensation": False})
    normals = standard_normal_draws(shapes, noise.normals_per_weight, 11, [0])
    early = noise.apply(params[names[0]].detach(), normals[names[0]], {"t_inference": 1.0})
    late = noise.apply(params[names[0]].detach(), normals[names[0]], {"t_inference": 3.15e7})
    # drift only shrinks conductances: the same devices, smaller on average a year later
    assert float(late.abs().mean()) < float(early.abs().mean())
    assert torch.corrcoef(torch.stack([early.flatten(), late.flatten()]))[0, 1] > 0.9


def test_the_device_evaluation_compensates_drift_per_layer(monkeypatch):
    # the MLP's layers are a weight and a bias each: one factor per layer and draw for both
    import memristor_mat.evaluation as evaluation
    from memristor_mat.noise import make_noise_model

    seen = []
    monkeypatch.setattr(evaluation, "correct_with_stacked_weights",
                        lambda model, stacked, x, y, batch: (seen.append(stacked), torch.zeros(len(next(iter(
                            stacked.values()))), dtype=torch.long))[1])
    model = mlp(bias=True)
    x, y = data()
    condition = {"t_inference": 3.15e7}
    evaluation.condition_accuracy(model, x, y, make_noise_model("pcm"), [condition], settings(draws=3))
    names = noisy_parameter_names(model)
    params = dict(model.named_parameters())
    plain = make_noise_model("pcm", {"drift_compensation": False})
    normals = standard_normal_draws({n: params[n].shape for n in names}, plain.normals_per_weight, 11, range(3))
    for layer in ("layers.1", "layers.3"):
        weight, bias = (f"{layer}.weight", f"{layer}.bias")
        factor_w = seen[0][weight] / plain.apply(params[weight].detach(), normals[weight], condition)
        factor_b = seen[0][bias] / plain.apply(params[bias].detach(), normals[bias], condition)
        per_draw = factor_w.flatten(1).nanmedian(1).values
        assert torch.allclose(factor_b, per_draw[:, None].expand_as(factor_b), rtol=1e-4, equal_nan=True)
        assert bool((per_draw > 1.5).all())  # a year's drift compensated
