"""Device models of SPEC §8 (pcm, rram, levels, stuck_at) and their crossbar mapping: golden values
computed by hand from the SPEC's formulas, sample statistics against closed forms, drift
compensation, common random numbers, straight-through gradient, shapes."""

import math

import pytest
import torch

from memristor_mat.noise import at_conditions, make_noise_model
from memristor_mat.noise.crossbar import ConductanceEffect, Crossbar, device_conductances
from memristor_mat.noise.levels import ConductanceLevels
from memristor_mat.noise.pcm import PCMNoise
from memristor_mat.noise.rram import RRAMNoise
from memristor_mat.noise.stuck_at import StuckAtFaults

YEAR = 365 * 86400.0  # 31,536,000 s
DAY = 86400.0


def t64(*values):
    return torch.tensor(values, dtype=torch.float64)


def pcm(g, z_program=0.0, z_drift=0.0, z_read=0.0, t=0.0, programmed_only=False, g_max=25.0):
    """PCMNoise on conductances ``g`` (float64) with the same normals for every device."""
    g = t64(*g)
    normals = [torch.full_like(g, z) for z in (z_program, z_drift, z_read)]
    return PCMNoise(g_max=g_max).apply(g, normals, {"t_inference": t}, programmed_only=programmed_only)


def normal(n, seed, dtype=torch.float64):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def drift_factor_mean(mu, sigma, t):
    """E[((t + t0) / t0)^-nu] for nu = |X|, X ~ N(mu, sigma^2): with L = ln((t + t0) / t0),
    E[e^{-L|X|}] = e^{-L mu + L^2 sigma^2 / 2} Phi(mu / sigma - L sigma)
                 + e^{L mu + L^2 sigma^2 / 2} Phi(-mu / sigma - L sigma)."""
    L = math.log((t + 20) / 20)

    def phi(x):
        return 0.5 * math.erfc(-x / math.sqrt(2))

    return (math.exp(-L * mu + (L * sigma) ** 2 / 2) * phi(mu / sigma - L * sigma)
            + math.exp(L * mu + (L * sigma) ** 2 / 2) * phi(-mu / sigma - L * sigma))


# ---------------------------------------------------------------------------------------------
# PCM golden values (g_max = 25 uS, t0 = 20 s, t_r = 250 ns)
# sigma_p(g) = 0.26348 + 1.9650 g - 1.1731 g^2 uS:
#   g = 0:   0.26348                                  -> / 25 = 0.0105392
#   g = 0.1: 0.26348 + 0.19650 - 0.011731 = 0.448249  -> / 25 = 0.01792996
#   g = 0.5: 0.26348 + 0.98250 - 0.293275 = 0.952705  -> / 25 = 0.0381082
#   g = 1:   0.26348 + 1.96500 - 1.173100 = 1.05538   -> / 25 = 0.0422152


@pytest.mark.parametrize("g, z, expected", [
    (0.1, 1.0, 0.1 + 0.01792996),
    (0.1, -1.0, 0.1 - 0.01792996),
    (0.5, 1.0, 0.5 + 0.0381082),
    (1.0, -1.0, 1.0 - 0.0422152),
    (1.0, 1.0, 1.0 + 0.0422152),  # not clipped at g_max
    (0.0, 1.0, 0.0105392),
    (0.0, -1.0, 0.0),  # 0 - 0.0105392 clamped at 0
])
def test_pcm_programming_noise(g, z, expected):
    assert pcm([g], z_program=z, programmed_only=True).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_pcm_programming_noise_scales_with_g_max():
    # sigma_p is in uS: at g_max = 50 uS, g = 0.5 moves by 0.952705 / 50 = 0.0190541 per unit z
    assert pcm([0.5], z_program=1.0, programmed_only=True, g_max=50.0).item() == pytest.approx(0.5190541, rel=1e-12)


# drift exponent: ln 0.1 = -2.302585093
#   mu_nu = -0.0155 (-2.302585093) + 0.0244 = 0.060090069 (inside [0.049, 0.1])
#   sigma_nu = -0.0125 (-2.302585093) - 0.0059 = 0.022882314 (inside [0.008, 0.045])
# g = 1 (ln 1 = 0): mu_nu = 0.0244 -> clipped to 0.049; sigma_nu = -0.0059 -> clipped to 0.008
# L(t) = ln((t + 20) / 20): L(1 day) = ln(4321) = 8.371242136; L(1 year) = ln(1576801) = 14.270908669
@pytest.mark.parametrize("g, z_drift, t, expected", [
    # z_nu = 0: nu = mu_nu = 0.060090069; exp(-0.060090069 * 8.371242136) = 0.604696550
    (0.1, 0.0, DAY, 0.1 * 0.604696550),
    # nu = 0.060090069 + 0.022882314 = 0.082972383; exp(-0.082972383 * 8.371242136) = 0.499283150
    (0.1, 1.0, DAY, 0.1 * math.exp(-0.082972383 * 8.371242136)),
    # g = 1, z_nu = +1: nu = 0.049 + 0.008 = 0.057; exp(-0.057 * 14.270908669) = 0.443329588
    (1.0, 1.0, YEAR, 0.443329588),
    # z_nu = -10: 0.049 - 0.08 = -0.031 is folded to nu = 0.031 (no growth):
    # exp(-0.031 * 14.270908669) = 0.642493764
    (1.0, -10.0, YEAR, 0.642493764),
    # g = 0.01 (ln = -4.605170186): mu_nu = 0.071380138 + 0.0244 = 0.095780138 (inside),
    # sigma_nu = 0.057564627 - 0.0059 = 0.051664627 -> clipped to 0.045; z_nu = +1:
    # nu = 0.140780138, exp(-0.140780138 * 8.371242136)
    (0.01, 1.0, DAY, 0.01 * math.exp(-0.140780138 * 8.371242136)),
    # g = 0.001 (ln = -6.907755279): mu_nu = 0.107070207 + 0.0244 = 0.131470207 -> clipped to 0.1
    (0.001, 0.0, DAY, 0.001 * math.exp(-0.1 * 8.371242136)),
    # t = 0: ((0 + 20) / 20)^-nu = 1 whatever nu
    (0.1, 3.0, 0.0, 0.1),
])
def test_pcm_drift(g, z_drift, t, expected):
    # z_prog = z_read = 0: G_t = G_d = g ((t + t0) / t0)^-nu
    assert pcm([g], z_drift=z_drift, t=t).item() == pytest.approx(expected, rel=1e-8)


def test_pcm_drift_exponent_floors_g_inside_the_log():
    # g = 0 uses ln(1e-7) = -16.118: mu_nu = 0.2498 + 0.0244 -> clipped to 0.1, sigma_nu -> 0.045;
    # but G_p = max(0 + 0.0105392 * 1, 0) = 0.0105392 after programming noise z = +1, and at
    # z_nu = 0 over 1 day it drifts by exp(-0.1 * 8.371242136) = 0.432953818
    out = pcm([0.0], z_program=1.0, t=DAY).item()
    assert out == pytest.approx(0.0105392 * math.exp(-0.1 * 8.371242136), rel=1e-8)
    assert math.isfinite(out)


# read noise: Q_s = min(0.0088 / max(G_p / g_max, 1e-3)^0.65, 0.2)
# time factor S(t) = sqrt(ln((t + t0 + t_r) / (2 t_r))):
#   S(0) = sqrt(ln(20.00000025 / 5e-7)) = sqrt(17.504390) = 4.183824808
#   S(1 day) = sqrt(ln(86420.00000025 / 5e-7)) = sqrt(25.875632) = 5.086809624
#   S(1 year) = sqrt(31.775299) = 5.636958283
def test_pcm_read_noise_golden():
    # g = 0.5, t = 0, z_read = +1: 0.5^0.65 = 0.637280314, Q_s = 0.0088 / 0.637280314 = 0.013808680
    # G_t = 0.5 (1 + 0.013808680 * 4.183824808) = 0.528886549
    assert pcm([0.5], z_read=1.0).item() == pytest.approx(0.528886549, rel=1e-8)
    # Q_s uses the programmed G_p, not the target: g = 0.1, z_prog = +1 -> G_p = 0.11792996,
    # G_p^0.65 = 0.249204396, Q_s = 0.0088 / 0.249204396 = 0.035312379,
    # G_t = 0.11792996 (1 + 0.035312379 * 4.183824808) = 0.135353027
    assert pcm([0.1], z_program=1.0, z_read=1.0).item() == pytest.approx(0.135353027, rel=1e-8)
    # g = 0.5, 1 day, z_nu = 0, z_read = -1: G_d = 0.5 exp(-0.049 * 8.371242136) = 0.331762,
    # G_t = G_d (1 - 0.013808680 * 5.086809624)
    g_d = 0.5 * math.exp(-0.049 * 8.371242136)
    assert pcm([0.5], z_read=-1.0, t=DAY).item() == pytest.approx(g_d * (1 - 0.013808680 * 5.086809624), rel=1e-8)


def test_pcm_read_noise_cap_and_clamp():
    # g = 0.005: 0.005^0.65 = 0.031939676, 0.0088 / 0.031939676 = 0.275519 > 0.2 -> Q_s = 0.2 (the cap);
    # t = 0, z_read = +1: G_t = 0.005 (1 + 0.2 * 4.183824808) = 0.009183825
    assert pcm([0.005], z_read=1.0).item() == pytest.approx(0.005 * (1 + 0.2 * 4.183824808), rel=1e-8)
    # G_p below 1e-3: max(G_p, 1e-3)^0.65 = 0.011220185, 0.0088 / 0.011220185 = 0.784 -> capped at 0.2
    assert pcm([1e-4], z_read=1.0).item() == pytest.approx(1e-4 * (1 + 0.2 * 4.183824808), rel=1e-8)
    # 1 year, z_read = -1: 1 - 0.2 * 5.636958283 = -0.127 < 0 -> clamped to 0
    assert pcm([0.005], z_read=-1.0, t=YEAR).item() == 0.0


def test_pcm_is_never_identity_and_rejects_bad_options():
    assert not PCMNoise().is_identity({"t_inference": 0.0})
    with pytest.raises(ValueError, match="g_max"):
        PCMNoise(g_max=0)
    with pytest.raises(ValueError, match="drift_compensation"):
        PCMNoise(drift_compensation="yes")
    with pytest.raises(ValueError, match="t_inference"):
        pcm([0.5], t=-1.0)


def test_an_option_no_model_of_a_device_has_is_named_with_those_it_has():
    with pytest.raises(ValueError, match=r"'rram' has no option 'drift_compensation'; its options: g_max$"):
        make_noise_model("rram", {"drift_compensation": False})
    with pytest.raises(ValueError, match=r"has no option 'g_max'; its options: none$"):
        make_noise_model("levels", {"g_max": 25})


# ---------------------------------------------------------------------------------------------
# RRAM golden values: sigma(g, t) = c0 + c1 g + c2 g^2 + c3 g^3 + c4 g^4 uS, g_max = 40 uS
#   t = 1 s, g = 0.5: 0.348 + 8.015 - 10.96325 + 5.674125 - 1.0509375 = 2.0229375 -> /40 = 0.0505734375
#   t = 1 s, g = 1: 0.348 + 16.030 - 43.853 + 45.393 - 16.815 = 1.103                -> /40 = 0.027575
#   t = 1 day, g = 0.1: 0.701 + 2.2086 - 0.50773 + 0.047095 - 0.0016458 = 2.4473192 -> /40 = 0.06118298
#   t = 1 day, g = 0.5: 0.701 + 11.043 - 12.69325 + 5.886875 - 1.028625 = 3.909     -> /40 = 0.097725
#   t = 2 days, g = 0.5: 0.782 + 10.137 - 10.87675 + 4.63275 - 0.745875 = 3.929125 -> /40 = 0.098228125
#   t = 2 days, g = 1: 0.782 + 20.274 - 43.507 + 37.062 - 11.934 = 2.677           -> /40 = 0.066925
#   g = 0: sigma = c0: 0.348 / 40 = 0.0087 at 1 s
@pytest.mark.parametrize("g, t, z, expected", [
    (0.5, 1.0, 1.0, 0.5 + 0.0505734375),
    (1.0, 1.0, 1.0, 1.027575),
    (0.1, DAY, 1.0, 0.1 + 0.06118298),
    (0.5, DAY, -1.0, 0.5 - 0.097725),
    (0.5, 2 * DAY, 1.0, 0.5 + 0.098228125),
    (1.0, 2 * DAY, -1.0, 1.0 - 0.066925),
    (0.0, 1.0, 1.0, 0.0087),
    (0.0, 1.0, -1.0, 0.0),  # clamped at 0
])
def test_rram_golden(g, t, z, expected):
    out = RRAMNoise().apply(t64(g), [t64(z)], {"t_inference": t})
    assert out.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_rram_is_defined_at_the_fitted_times_only():
    with pytest.raises(ValueError, match="86400"):
        RRAMNoise().apply(t64(0.5), [t64(1.0)], {"t_inference": 3600.0})
    # g_max = 20 uS: the same uS spread is twice as large relative to the window
    out = RRAMNoise(g_max=20.0).apply(t64(0.5), [t64(1.0)], {"t_inference": DAY})
    assert out.item() == pytest.approx(0.5 + 3.909 / 20, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# finite levels: g_q = floor(g (n - 1) + 1/2) / (n - 1)
@pytest.mark.parametrize("n, g, expected", [
    (2, 0.49, 0.0), (2, 0.5, 1.0), (2, 0.51, 1.0),  # n = 2: levels 0, 1; the tie goes up
    (5, 0.0, 0.0), (5, 1.0, 1.0),  # end levels exactly 0 and g_max
    (5, 0.1, 0.0), (5, 0.124, 0.0), (5, 0.125, 0.25),  # 0.125 * 4 = 0.5: halfway, goes up
    (5, 0.374, 0.25), (5, 0.376, 0.5), (5, 0.9, 1.0),
    (4, 0.5, 2 / 3),  # levels 0, 1/3, 2/3, 1: 0.5 * 3 = 1.5 halfway -> 2/3
    (4, 1.2, 1.0), (4, -0.1, 0.0),  # out of [0, 1]: clipped first
])
def test_levels_golden(n, g, expected):
    out = ConductanceLevels().apply(t64(g), [], {"n_levels": n})
    assert out.item() == expected


def test_levels_reject_bad_counts():
    for n in (1, 2.5, 0):
        with pytest.raises(ValueError, match="n_levels"):
            ConductanceLevels().apply(t64(0.5), [], {"n_levels": n})


# ---------------------------------------------------------------------------------------------
# stuck-at: u = Phi(z); off if u < p_off, on if u > 1 - p_on.
# p_off = 0.1 -> Phi^-1(0.1) = -1.2815516; p_on = 0.2 -> Phi^-1(0.8) = 0.8416212
@pytest.mark.parametrize("z, expected", [(-1.30, 0.0), (-1.27, 0.4), (0.0, 0.4), (0.83, 0.4), (0.85, 1.0)])
def test_stuck_at_thresholds(z, expected):
    out = StuckAtFaults().apply(t64(0.4), [t64(z)], {"p_stuck_off": 0.1, "p_stuck_on": 0.2})
    assert out.item() == expected


def test_stuck_at_identity_and_extremes():
    effect = StuckAtFaults()
    assert effect.is_identity({"p_stuck_off": 0.0, "p_stuck_on": 0.0})
    assert not effect.is_identity({"p_stuck_off": 0.0, "p_stuck_on": 0.01})
    z = t64(-40.0, -3.0, 0.0, 3.0, 40.0)
    g = torch.full_like(z, 0.5)
    # Phi(-1) = 0.158655: z = -1 is stuck at p_off = 0.16, not at 0.15
    assert effect.apply(t64(0.5), [t64(-1.0)], {"p_stuck_off": 0.16, "p_stuck_on": 0.0}).item() == 0.0
    assert effect.apply(t64(0.5), [t64(-1.0)], {"p_stuck_off": 0.15, "p_stuck_on": 0.0}).item() == 0.5
    # a rate of 0 never fires, even far in the tails; a rate of 1 always does
    assert torch.equal(effect.apply(g, [z], {"p_stuck_off": 0.0, "p_stuck_on": 0.0}), g)
    assert torch.equal(effect.apply(g, [z], {"p_stuck_off": 1.0, "p_stuck_on": 0.0}), torch.zeros_like(g))
    assert torch.equal(effect.apply(g, [z], {"p_stuck_off": 0.0, "p_stuck_on": 1.0}), torch.ones_like(g))
    with pytest.raises(ValueError, match="exceeds 1"):
        effect.apply(g, [z], {"p_stuck_off": 0.6, "p_stuck_on": 0.5})


# ---------------------------------------------------------------------------------------------
# statistics over 1e5 devices


def test_pcm_programming_sd_and_mean():
    # g = 0.5: sd = 0.952705 uS / 25 uS = 0.0381082 (the clamp at 0 is 13 sd away)
    z = normal(100_000, 1)
    g_p = PCMNoise().apply(torch.full_like(z, 0.5), [z, z, z], {"t_inference": 0.0}, programmed_only=True)
    assert g_p.std().item() == pytest.approx(0.0381082, rel=0.015)  # sd's standard error: 0.22 %
    assert g_p.mean().item() == pytest.approx(0.5, abs=5 * 0.0381082 / math.sqrt(len(z)))


@pytest.mark.parametrize("g, mu, sigma", [(0.1, 0.060090069, 0.022882314), (1.0, 0.049, 0.008)])
@pytest.mark.parametrize("t", [3600.0, YEAR])
def test_pcm_mean_drift_factor(g, mu, sigma, t):
    # the mean of G_d / G_p over devices is E[((t + t0) / t0)^-nu], nu folded normal (closed form above)
    z_program, z_drift = normal(100_000, 2), normal(100_000, 3)
    g = torch.full_like(z_program, g)
    effect, condition = PCMNoise(), {"t_inference": t}
    g_p = effect.apply(g, [z_program, z_drift, torch.zeros_like(g)], condition, programmed_only=True)
    g_d = effect.apply(g, [z_program, z_drift, torch.zeros_like(g)], condition)  # no read noise
    ratio = g_d / g_p
    assert ratio.mean().item() == pytest.approx(drift_factor_mean(mu, sigma, t), rel=2e-3)
    assert ratio.max().item() < 1.0  # drift only decreases conductance


def test_pcm_read_noise_sd():
    # g = 0.5, 1 day, z_prog = z_nu = 0: G_d = 0.5 exp(-0.049 * 8.371242136) = 0.331762 for every
    # device, and sd(G_t) / G_d = Q_s S(1 day) = 0.013808680 * 5.086809624 = 0.070242152
    z = normal(100_000, 4)
    zero = torch.zeros_like(z)
    g_t = PCMNoise().apply(torch.full_like(z, 0.5), [zero, zero, z], {"t_inference": DAY})
    g_d = 0.5 * math.exp(-0.049 * 8.371242136)
    assert (g_t / g_d).std().item() == pytest.approx(0.070242152, rel=0.015)
    assert (g_t / g_d).mean().item() == pytest.approx(1.0, abs=5 * 0.0702 / math.sqrt(len(z)))


@pytest.mark.parametrize("t, sd", [(1.0, 0.0505734375), (DAY, 0.097725), (2 * DAY, 0.098228125)])
def test_rram_sd(t, sd):
    z = normal(100_000, 5)
    g_t = RRAMNoise().apply(torch.full_like(z, 0.5), [z], {"t_inference": t})
    assert g_t.std().item() == pytest.approx(sd, rel=0.015)
    assert g_t.mean().item() == pytest.approx(0.5, abs=5 * sd / math.sqrt(len(z)))


def test_stuck_at_fractions_and_nesting():
    z = normal(100_000, 6)
    g = torch.full_like(z, 0.5)
    out = StuckAtFaults().apply(g, [z], {"p_stuck_off": 0.05, "p_stuck_on": 0.03})
    for value, p in ((0.0, 0.05), (1.0, 0.03)):
        fraction = (out == value).double().mean().item()
        assert fraction == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / len(z)))
    # common random numbers: every device stuck at 2 % is stuck the same way at 5 %
    fewer = StuckAtFaults().apply(g, [z], {"p_stuck_off": 0.02, "p_stuck_on": 0.0})
    more = StuckAtFaults().apply(g, [z], {"p_stuck_off": 0.05, "p_stuck_on": 0.0})
    assert bool(((fewer == 0) <= (more == 0)).all()) and (more == 0).sum() > (fewer == 0).sum()


# ---------------------------------------------------------------------------------------------
# crossbar mapping


class Recorder:
    """A do-nothing effect that records the conductances and normals it was given."""

    drift_compensation = False

    def __init__(self, registry_name, normals_per_device):
        self.registry_name, self.normals_per_device = registry_name, normals_per_device
        self.seen = None

    def is_identity(self, condition):
        return False

    def apply(self, g, normals, condition, *, programmed_only=False):
        self.seen = (g.clone(), [n.clone() for n in normals])
        return g


def test_effects_follow_the_protocol():
    for effect in (PCMNoise(), RRAMNoise(), ConductanceLevels(), StuckAtFaults(), Recorder("pcm", 1)):
        assert isinstance(effect, ConductanceEffect)


def test_crossbar_mapping_and_normals_layout():
    # W = [[0.5, -1], [0.25, 0]]: a = max|W| = 1, g+ = [[0.5, 0], [0.25, 0]], g- = [[0, 1], [0, 0]]
    w = torch.tensor([[0.5, -1.0], [0.25, 0.0]])
    effects = [Recorder("levels", 0), Recorder("pcm", 2), Recorder("stuck_at", 1)]
    crossbar = Crossbar(effects)
    assert crossbar.normals_per_weight == 2 * (0 + 2 + 1)
    assert crossbar.registry_names == ("levels", "pcm", "stuck_at")
    # normals[d, j] = 10 d + j for draws d = 0, 1 and entries j = 0..5
    normals = (10 * torch.arange(2.0).view(2, 1, 1, 1) + torch.arange(6.0).view(1, 6, 1, 1)).expand(2, 6, 2, 2)
    out = crossbar.apply(w, normals, {"n_levels": 2, "t_inference": 1.0, "p_stuck_off": 0.0, "p_stuck_on": 0.0})
    g, _ = effects[0].seen
    assert torch.equal(g, torch.tensor([[[0.5, 0.0], [0.25, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]))
    # effect blocks in chain order, each read as (normal index, device +/-)
    _, pcm_normals = effects[1].seen
    _, stuck_normals = effects[2].seen
    assert [tuple(n.shape) for n in pcm_normals] == [(2, 2, 2, 2)] * 2
    for d in (0, 1):
        for i, j in ((0, 0), (1, 2)):  # pcm normal i: entries 2i (device +) and 2i + 1 (device -)
            assert torch.all(pcm_normals[i][d, 0] == 10 * d + j) and torch.all(pcm_normals[i][d, 1] == 10 * d + j + 1)
        assert torch.all(stuck_normals[0][d, 0] == 10 * d + 4) and torch.all(stuck_normals[0][d, 1] == 10 * d + 5)
    # reconstruction (g+ - g-) * a is W exactly here (powers of two), for every draw
    assert out.shape == (2, 2, 2) and torch.equal(out, w.expand(2, 2, 2))


def test_crossbar_sign_handling_and_zero_tensor():
    # W = [[-2, 1]]: a = 2 (from the negative weight), g+ = [0, 0.5], g- = [1, 0]
    g, a = device_conductances(torch.tensor([[-2.0, 1.0]]))
    assert a.item() == 2.0
    assert torch.equal(g, torch.tensor([[[0.0, 0.5]], [[1.0, 0.0]]]))
    # an all-zero tensor stays zero: no device carries anything, whatever the noise
    model = make_noise_model(["pcm", "stuck_at"])
    zero = torch.zeros(3, 2)
    normals = torch.randn(4, model.normals_per_weight, 3, 2, generator=torch.Generator().manual_seed(0))
    out = model.apply(zero, normals, model.check_condition({"t_inference": DAY, "p_stuck_on": 0.5}))
    assert out.shape == (4, 3, 2) and torch.equal(out, torch.zeros(4, 3, 2))


def test_crossbar_identity_returns_the_weight_itself():
    model = make_noise_model("stuck_at")
    w = torch.randn(3, 4)
    normals = torch.randn(5, 2, 3, 4)
    condition = model.check_condition({})
    assert model.is_identity(condition)
    assert model.apply(w, normals, condition) is w
    assert not model.is_identity(model.check_condition({"p_stuck_off": 0.01}))


def test_reconstruction_without_noise_is_the_weight():
    # levels with 2^24 + 1 levels round float32 conductances to themselves up to float precision
    w = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    model = make_noise_model("levels")
    out = model.apply(w, torch.empty(0, 16, 8), {"n_levels": 2**24 + 1})
    assert torch.allclose(out, w, rtol=0, atol=2 * w.abs().max().item() * 2**-24)


def common_draws(model, shape, draws=3, seed=0):
    return torch.randn(draws, model.normals_per_weight, *shape, generator=torch.Generator().manual_seed(seed))


def row_sums_mean(w):
    return w.reshape(*w.shape[:-2], w.shape[-2], -1).sum(-1).abs().mean(-1)


def test_drift_compensation_restores_the_programmed_response():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(2))
    compensated, plain = make_noise_model("pcm"), make_noise_model("pcm", {"drift_compensation": False})
    assert compensated.compensates_drift and not plain.compensates_drift
    normals = common_draws(compensated, w.shape, draws=2)
    condition = {"t_inference": YEAR}
    # the reference: right after programming (programming noise only), same normals
    g, a = device_conductances(w)
    block = normals.unflatten(1, (3, 2))
    g_p = PCMNoise().apply(g, [block.select(1, i) for i in range(3)], condition, programmed_only=True)
    reference = (g_p[:, 0] - g_p[:, 1]) * a
    with_compensation = compensated.apply(w, normals, condition)
    without = plain.apply(w, normals, condition)
    assert torch.allclose(row_sums_mean(with_compensation), row_sums_mean(reference), rtol=1e-5)
    # a year of drift (mean exponent >= 0.049: factor <= exp(-0.049 * 14.27) = 0.50) shrinks it
    assert bool((row_sums_mean(without) < 0.7 * row_sums_mean(reference)).all())
    # compensation is one scalar per draw: the compensated weights are the plain ones rescaled
    nonzero = without != 0  # (a weight whose two devices both read 0 stays 0)
    ratio = torch.where(nonzero, with_compensation / without, 1.0)
    scale = torch.stack([ratio[d][nonzero[d]][0] for d in range(2)]).view(2, 1, 1)
    assert torch.allclose(ratio[nonzero], scale.expand_as(ratio)[nonzero], rtol=1e-5)
    assert bool((scale > 1.5).all())  # a year's drift compensated by a factor of about 2


def test_drift_compensation_of_a_bias():
    # a 1-D tensor is read as (n, 1): mean |W_i| is restored
    w = torch.randn(50, generator=torch.Generator().manual_seed(3))
    model = make_noise_model("pcm")
    normals = common_draws(model, w.shape)
    out = model.apply(w, normals, {"t_inference": YEAR})
    g, a = device_conductances(w)
    block = normals.unflatten(1, (3, 2))
    g_p = PCMNoise().apply(g, [block.select(1, i) for i in range(3)], {}, programmed_only=True)
    reference = (g_p[:, 0] - g_p[:, 1]) * a
    assert torch.allclose(out.abs().mean(-1), reference.abs().mean(-1), rtol=1e-5)


def programmed_only(w, normals):
    """The PCM weights right after programming (programming noise only) from ``normals``."""
    g, a = device_conductances(w)
    block = normals.unflatten(1, (3, 2))
    g_p = PCMNoise().apply(g, [block.select(1, i) for i in range(3)], {}, programmed_only=True)
    return (g_p[:, 0] - g_p[:, 1]) * a


def test_drift_compensation_rescales_a_layer_as_a_whole_from_its_weight_and_bias():
    # SPEC §8: one scalar per layer, the ratio of its mean |output| to an all-ones probe (W 1 + b)
    # right after programming and now, multiplying the weight and the bias alike
    gen = torch.Generator().manual_seed(5)
    w, b = torch.randn(10, 32, generator=gen), torch.randn(10, generator=gen)
    compensated, plain = make_noise_model("pcm"), make_noise_model("pcm", {"drift_compensation": False})
    normals = {"w": common_draws(plain, w.shape, draws=3, seed=1), "b": common_draws(plain, b.shape, draws=3, seed=2)}
    condition = {"t_inference": YEAR}
    layer = at_conditions(compensated, {"w": w, "b": b}, normals, {"w": 0, "b": 0})(condition)
    now_w, now_b = plain.apply(w, normals["w"], condition), plain.apply(b, normals["b"], condition)
    then = programmed_only(w, normals["w"]).sum(-1) + programmed_only(b, normals["b"])
    alpha = then.abs().mean(-1) / (now_w.sum(-1) + now_b).abs().mean(-1)
    assert torch.allclose(layer["w"], now_w * alpha.view(3, 1, 1), rtol=1e-5)
    assert torch.allclose(layer["b"], now_b * alpha.view(3, 1), rtol=1e-5)
    # not the factor each tensor would get alone
    alone = compensated.apply(b, normals["b"], condition)
    assert not torch.allclose(alone, layer["b"], rtol=1e-3)


def read_in_both_layouts(model, seed, transposed_axis=1):
    """A year after programming, an (out, in) matrix read with its outputs along axis 0, and its
    transpose (in, out) with the same devices read along ``transposed_axis``; the latter
    transposed back."""
    w = torch.randn(6, 20, generator=torch.Generator().manual_seed(seed))  # (out, in)
    normals = common_draws(model, w.shape, draws=2)
    condition = {"t_inference": YEAR}
    out_in = at_conditions(model, {"w": w}, {"w": normals}, {"w": 0})(condition)["w"]
    in_out = at_conditions(model, {"w": w.T}, {"w": normals.transpose(-1, -2)}, {"w": transposed_axis})(condition)["w"]
    return out_in, in_out.transpose(-1, -2)


def test_drift_compensation_reads_a_layer_along_its_output_axis():
    # an (in, out) matrix used as x @ W (the spiking network's) is the transposed (out, in) one
    compensated = make_noise_model("pcm")
    out_in, in_out = read_in_both_layouts(compensated, seed=6)
    assert torch.allclose(in_out, out_in, rtol=1e-6)
    # read along the wrong axis, the factor differs
    _, wrong = read_in_both_layouts(compensated, seed=6, transposed_axis=0)
    assert not torch.allclose(wrong, out_in, rtol=1e-3)


def test_one_hot_probe_compensates_with_the_mean_of_every_devices_response():
    # the option compensation_probe: one_hot: alpha = mean_ij |W_ref + b_ref| / mean_ij |W_t + b_t|
    gen = torch.Generator().manual_seed(7)
    w, b = torch.randn(10, 32, generator=gen), torch.randn(10, generator=gen)
    compensated = make_noise_model("pcm", {"compensation_probe": "one_hot"})
    plain = make_noise_model("pcm", {"drift_compensation": False})
    assert compensated.compensation_probe == "one_hot" and make_noise_model("pcm").compensation_probe == "ones"
    normals = {"w": common_draws(plain, w.shape, draws=3, seed=1), "b": common_draws(plain, b.shape, draws=3, seed=2)}
    condition = {"t_inference": YEAR}
    layer = at_conditions(compensated, {"w": w, "b": b}, normals, {"w": 0, "b": 0})(condition)
    now_w, now_b = plain.apply(w, normals["w"], condition), plain.apply(b, normals["b"], condition)
    then_w, then_b = programmed_only(w, normals["w"]), programmed_only(b, normals["b"])
    alpha = ((then_w + then_b[:, :, None]).abs().mean((-2, -1))
             / (now_w + now_b[:, :, None]).abs().mean((-2, -1)))
    assert torch.allclose(layer["w"], now_w * alpha.view(3, 1, 1), rtol=1e-5)
    assert torch.allclose(layer["b"], now_b * alpha.view(3, 1), rtol=1e-5)
    ones = at_conditions(make_noise_model("pcm"), {"w": w, "b": b}, normals, {"w": 0, "b": 0})(condition)
    assert not torch.allclose(ones["w"], layer["w"], rtol=1e-3)  # the default probe's factor differs


def test_one_hot_probe_reads_matrices_of_either_layout_and_convolutions_as_unrolled():
    from memristor_mat.noise.crossbar import probe_readout

    gen = torch.Generator().manual_seed(8)
    w_in, w_rec, b = torch.randn(4, 6, generator=gen), torch.randn(6, 6, generator=gen), torch.randn(6, generator=gen)
    # (in, out) matrices feeding the same 6 outputs: the responses are the rows of both, plus b
    expected = (torch.cat([w_in, w_rec]) + b).abs().mean()
    readout = probe_readout([(w_in, 2, 1), (w_rec, 2, 1), (b, 1, 0)], "one_hot")
    assert torch.allclose(readout, expected)
    # an (out, in, kh, kw) convolution: its unrolled (out, in kh kw) matrix; draws lead
    conv = torch.randn(2, 5, 3, 3, 3, generator=gen)
    assert torch.allclose(probe_readout([(conv, 4, 0)], "one_hot"), conv.abs().mean((1, 2, 3, 4)))
    assert torch.allclose(probe_readout([(b, 1, 0)], "one_hot"), b.abs().mean())  # biases alone
    with pytest.raises(ValueError, match="compensation_probe"):
        probe_readout([(b, 1, 0)], "zeros")
    with pytest.raises(ValueError, match="compensation_probe"):
        make_noise_model("pcm", {"compensation_probe": "zeros"})


def test_one_hot_probe_scatters_less_than_the_all_ones_probe():
    # the all-ones probe reads signed row sums, which partly cancel: its factor scatters more from
    # draw to draw than the one-hot probe's mean over every device (module docstring)
    gen = torch.Generator().manual_seed(9)
    w = torch.randn(10, 128, generator=gen)
    normals = {"w": common_draws(make_noise_model("pcm"), w.shape, draws=200, seed=3)}
    plain = at_conditions(make_noise_model("pcm", {"drift_compensation": False}), {"w": w}, normals)
    spread = {}
    for probe in ("ones", "one_hot"):
        model = make_noise_model("pcm", {"compensation_probe": probe})
        layer = at_conditions(model, {"w": w}, normals)({"t_inference": YEAR})["w"]
        alpha = (layer / plain({"t_inference": YEAR})["w"]).flatten(1).nanmedian(1).values
        spread[probe] = float(alpha.std() / alpha.mean())
    assert spread["one_hot"] < 0.7 * spread["ones"], spread


def test_per_column_compensation_restores_each_outputs_mean_response():
    # compensation_scope: column: alpha_i = mean_j |W_ref[i, j] + b_ref[i]| / mean_j |W_t[i, j] + b_t[i]|,
    # one per output and draw, multiplying the weight's row i and the bias' entry i
    from memristor_mat.noise.crossbar import probe_readout

    gen = torch.Generator().manual_seed(10)
    w, b = torch.randn(10, 32, generator=gen), torch.randn(10, generator=gen)
    per_column = make_noise_model("pcm", {"compensation_probe": "one_hot", "compensation_scope": "column"})
    plain = make_noise_model("pcm", {"drift_compensation": False})
    normals = {"w": common_draws(plain, w.shape, draws=3, seed=1), "b": common_draws(plain, b.shape, draws=3, seed=2)}
    condition = {"t_inference": YEAR}
    layer = at_conditions(per_column, {"w": w, "b": b}, normals, {"w": 0, "b": 0})(condition)
    now_w, now_b = plain.apply(w, normals["w"], condition), plain.apply(b, normals["b"], condition)
    then_w, then_b = programmed_only(w, normals["w"]), programmed_only(b, normals["b"])
    alpha = (then_w + then_b[:, :, None]).abs().mean(-1) / (now_w + now_b[:, :, None]).abs().mean(-1)  # (3, 10)
    assert torch.allclose(layer["w"], now_w * alpha[:, :, None], rtol=1e-5)
    assert torch.allclose(layer["b"], now_b * alpha, rtol=1e-5)
    assert float(alpha.std(-1).min()) > 0.01  # a factor per column, not one per layer
    # each column's readout is the programmed one again
    restored = probe_readout([(layer["w"], 2, 0), (layer["b"], 1, 0)], "one_hot", "column")
    programmed = probe_readout([(then_w, 2, 0), (then_b, 1, 0)], "one_hot", "column")
    assert torch.allclose(restored, programmed, rtol=1e-5)


def test_per_column_compensation_follows_the_output_axis_and_needs_the_one_hot_probe():
    from memristor_mat.noise.crossbar import probe_readout

    per_column = make_noise_model("pcm", {"compensation_probe": "one_hot", "compensation_scope": "column"})
    out_in, in_out = read_in_both_layouts(per_column, seed=11)
    assert torch.allclose(in_out, out_in, rtol=1e-6)
    conv = torch.randn(2, 4, 3, 3, 3, generator=torch.Generator().manual_seed(12))  # draws, (out, in, kh, kw)
    assert torch.allclose(probe_readout([(conv, 4, 0)], "one_hot", "column"), conv.abs().mean((2, 3, 4)))
    with pytest.raises(ValueError, match="needs compensation_probe one_hot"):
        make_noise_model("pcm", {"compensation_scope": "column"})
    with pytest.raises(ValueError, match="needs compensation_probe one_hot"):
        probe_readout([(conv, 4, 0)], "ones", "column")
    with pytest.raises(ValueError, match="compensation_scope"):
        make_noise_model("pcm", {"compensation_scope": "row"})


def test_crossbar_layers_group_each_modules_tensors_and_follow_a_models_layout():
    from memristor_mat.models.mlp import MLP
    from memristor_mat.models.snn import RecurrentSNN
    from memristor_mat.noise import crossbar_layers, noisy_parameter_names

    mlp = MLP(input_size=8, hidden_sizes=[4], num_classes=3, bias=True)
    assert crossbar_layers(mlp, noisy_parameter_names(mlp)) == [
        {"layers.1.weight": 0, "layers.1.bias": 0}, {"layers.3.weight": 0, "layers.3.bias": 0}]
    snn = RecurrentSNN(n_inputs=4, hidden_size=6, num_classes=2)
    assert crossbar_layers(snn, noisy_parameter_names(snn)) == [{"w_in": 1, "w_rec": 1}, {"w_out": 1}]
    with pytest.raises(ValueError, match="lists"):
        crossbar_layers(snn, ("w_in", "w_rec"))

    class Misdeclared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Parameter(torch.zeros(3, 5)), torch.nn.Parameter(torch.zeros(5, 4))

        def crossbar_layers(self):
            return ({"a": 0, "b": 0},)

    with pytest.raises(ValueError, match="same outputs"):
        crossbar_layers(Misdeclared(), ("a", "b"))


def test_stuck_devices_are_stuck_after_the_device_physics():
    # [pcm, stuck_at] with every device stuck on: both devices of each pair read g_max whatever
    # PCM did before, so every weight is 0 (stuck_at applied first, PCM noise would move them)
    model = make_noise_model(["stuck_at", "pcm"], {"drift_compensation": False})  # listed in either order
    w = torch.randn(5, 4, generator=torch.Generator().manual_seed(7))
    out = model.apply(w, common_draws(model, w.shape), {"t_inference": DAY, "p_stuck_off": 0.0, "p_stuck_on": 1.0})
    assert torch.equal(out, torch.zeros(3, 5, 4))


def test_an_effect_between_two_stages_acts_between_them(monkeypatch):
    # a registry stage of 1.5 (README "Extending"): after the device physics, before stuck devices,
    # and chained with a physics without counting as a second one
    from memristor_mat.noise_registry import NOISE_MODELS, NoiseEntry, device_chain

    monkeypatch.setitem(NOISE_MODELS, "offset", NoiseEntry(
        "offset", "memristor_mat_plugins:Offset", "conductance", "a random offset per device", stage=1.5))
    assert [e.name for e in device_chain(["stuck_at", "offset", "pcm", "levels"])] == [
        "levels", "pcm", "offset", "stuck_at"]
    with pytest.raises(ValueError, match="one device physics"):
        device_chain(["pcm", "rram", "offset"])


def test_common_random_numbers_age_the_same_devices():
    model = make_noise_model("pcm", {"drift_compensation": False})
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(4))
    normals = common_draws(model, w.shape, draws=4)
    sizes = [model.apply(w, normals, {"t_inference": t}).abs().mean().item() for t in (1.0, 3600.0, DAY, YEAR)]
    assert all(later < earlier for earlier, later in zip(sizes, sizes[1:])), sizes
    # without read noise's fluctuation, each single device decreases: compare drift-only magnitudes
    effect = PCMNoise(drift_compensation=False)
    g = torch.rand(1000, generator=torch.Generator().manual_seed(5))
    z = [normal(1000, 6, torch.float32), normal(1000, 7, torch.float32), torch.zeros(1000)]
    aged = [effect.apply(g, z, {"t_inference": t}) for t in (1.0, 3600.0, DAY, YEAR)]
    assert all(bool((later <= earlier).all()) for earlier, later in zip(aged, aged[1:]))


def test_straight_through_gradient():
    model = make_noise_model(["levels", "pcm", "stuck_at"])
    condition = model.check_condition({"n_levels": 8, "t_inference": DAY, "p_stuck_off": 0.05})
    w = torch.randn(6, 5, requires_grad=True)
    normals = common_draws(model, w.shape, draws=3)
    out = model.apply(w, normals, condition)
    weights = torch.randn(3, 6, 5)
    (out * weights).sum().backward()
    assert torch.allclose(w.grad, weights.sum(0))
    with torch.no_grad():
        assert torch.allclose(model.apply(w, normals, condition), out)
    # one draw (no draw dimension): the gradient is exactly the upstream one
    w.grad = None
    model.apply(w, normals[0], condition).sum().backward()
    assert torch.equal(w.grad, torch.ones(6, 5))


def test_make_noise_model_builds_the_chain_in_physical_order():
    model = make_noise_model(["pcm", "levels"], {"drift_compensation": False})
    assert isinstance(model, Crossbar)
    assert [type(e) for e in model.effects] == [ConductanceLevels, PCMNoise]
    assert model.effects[1].drift_compensation is False and not model.compensates_drift
    assert model.normals_per_weight == 2 * 3
    assert model.condition_keys == ("n_levels", "t_inference")
    rram = make_noise_model("rram", {"g_max": 20})
    assert rram.effects[0].g_max == 20.0 and rram.normals_per_weight == 2
    with pytest.raises(ValueError, match="bogus"):
        make_noise_model("pcm", {"bogus": 1})
    with pytest.raises(ValueError, match="t_inference"):
        make_noise_model("rram").check_condition({"t_inference": 3600})


def test_sample_draws_from_the_generator():
    model = make_noise_model(["levels", "rram"])
    w = torch.randn(8, 4)
    condition = {"n_levels": 16, "t_inference": DAY}
    first = model.sample(w, torch.Generator().manual_seed(9), condition)
    again = model.sample(w, torch.Generator().manual_seed(9), condition)
    other = model.sample(w, torch.Generator().manual_seed(10), condition)
    assert first.shape == w.shape and torch.equal(first, again) and not torch.equal(first, other)
    assert torch.isfinite(first).all() and not torch.equal(first, w)


@pytest.mark.parametrize("model_name, options, conditions", [
    ("pcm", {}, [{"t_inference": t} for t in (1.0, DAY, YEAR)]),
    ("pcm", {"drift_compensation": False}, [{"t_inference": t} for t in (0.0, DAY, 10 * YEAR)]),
    (["pcm", "stuck_at"], {}, [{"t_inference": DAY, "p_stuck_off": 0.05}, {"t_inference": YEAR},
                               {"t_inference": DAY, "p_stuck_on": 0.1}]),
    (["levels", "pcm"], {}, [{"n_levels": 4, "t_inference": DAY}, {"n_levels": 16, "t_inference": YEAR}]),
    ("rram", {}, [{"t_inference": t} for t in (1.0, DAY, 2 * DAY)]),
    ("gaussian", {}, [{"sigma": 0.1}, {"sigma": 0.0}, {"sigma": 0.3}]),
])
def test_a_chip_programmed_once_reads_as_applying_anew_at_every_condition(model_name, options, conditions):
    # the evaluation programs each draw once (PCM: programming noise, drift exponents) and reads it
    # at every condition; reading must leave the programmed state as it was, in any order
    model = make_noise_model(model_name, options)
    conditions = [model.check_condition(c) for c in conditions]
    w = torch.randn(12, 9, generator=torch.Generator().manual_seed(3))
    normals = common_draws(model, w.shape, draws=4)
    chip = at_conditions(model, {"w": w}, {"w": normals})
    for condition in [*conditions, *reversed(conditions)]:
        read = chip(condition)["w"]
        assert read.shape == (4, 12, 9) or (model.is_identity(condition) and read is w)
        assert torch.equal(read, model.apply(w, normals, condition)), condition


def test_programmed_pcm_is_the_programming_noise_and_reads_as_its_formula():
    effect = PCMNoise(drift_compensation=False)
    g = torch.rand(500, generator=torch.Generator().manual_seed(8))
    z = [normal(500, seed, torch.float32) for seed in (1, 2, 3)]
    programmed = effect.program(g, z)
    assert torch.equal(programmed.conductance, effect.apply(g, z, {"t_inference": DAY}, programmed_only=True))
    for t in (0.0, DAY):
        # G_t = max(G_d + |G_d| Q_s S(t) z3, 0), G_d = G_p ((t + t0) / t0)^-nu, written out here in float64
        g_p, nu = programmed.conductance.double(), programmed.drift_exponent.double()
        g_d = g_p * ((t + 20.0) / 20.0) ** -nu
        s = math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
        q = torch.clamp(0.0088 * s / g_p.clamp_min(1e-3) ** 0.65, max=0.2 * s)
        expected = (g_d + g_d * q * z[2].double()).clamp_min(0)
        assert torch.allclose(effect.read(programmed, {"t_inference": t}).double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 3, 3, 3)])
@pytest.mark.parametrize("model_name, options, condition", [
    ("pcm", {}, {"t_inference": DAY}),
    ("pcm", {"drift_compensation": False}, {"t_inference": 1.0}),
    ("rram", {}, {"t_inference": 2 * DAY}),
    (["levels", "pcm"], {}, {"n_levels": 4, "t_inference": YEAR}),
    ("stuck_at", {}, {"p_stuck_off": 0.1, "p_stuck_on": 0.1}),
    ("levels", {}, {"n_levels": 3}),
])
def test_shapes_with_draw_dimensions(shape, model_name, options, condition):
    model = make_noise_model(model_name, options)
    condition = model.check_condition(condition)
    w = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    normals = common_draws(model, shape, draws=3)
    out = model.apply(w, normals, condition)
    assert out.shape == (3, *shape) and torch.isfinite(out).all()
    # draw d is the same as applying draw d's normals alone (compensation per draw included)
    for d in range(3):
        assert torch.allclose(out[d], model.apply(w, normals[d], condition), rtol=1e-6, atol=1e-7)
    # two leading draw dimensions
    assert model.apply(w, normals.unsqueeze(0).expand(2, *normals.shape), condition).shape == (2, 3, *shape)
    with pytest.raises(ValueError, match="normals"):
        model.apply(w, torch.randn(3, model.normals_per_weight + 1, *shape), condition)
