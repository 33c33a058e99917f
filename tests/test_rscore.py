import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluation import ProxyError, get_proxy, load_dataset, proxy_batch
from evaluation.rscore import (default_init, gaussian_inits, normalise_over_set, phi, psi, relu_neurons, rescale,
                               rscore_value, stateless, use_shift_pools)
from evaluation.rscore.patterns import PatternSet, count_distinct, pack_weights, pattern_words
from nas_problem import Genotype, build_proxy_network, load_genotypes

SHARED = Path(__file__).resolve().parents[2] / "shared"
GENOTYPES = SHARED / "data" / "published_genotypes.json"


def tiny_conv_net():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * 4 * 4, 5), nn.ReLU(),  # a 2-D ReLU: not counted
            nn.Linear(5, 3))


def images(n, seed=0, size=8):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- Ψ
def slow_psi(network, x, weights):
    """The obvious way: per initialisation, a Python set of the B-tuples of every neuron."""
    inits = next(iter(weights.values())).shape[0]
    counts = []
    for k in range(inits):
        net = copy.deepcopy(network).train()
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                parameter.copy_(weights[name][k])
        patterns = set()

        def hook(module, inputs, output):
            if output.dim() == 4:
                bits = (output > 0).flatten(1).t()
                patterns.update(tuple(row) for row in bits.tolist())

        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.register_forward_hook(hook)
        with torch.no_grad():
            net(x)
        counts.append(len(patterns))
    return sum(counts) / inits


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [6, 30, 64, 70])  # presence table; one packed int64 (64: all its bits); two
def test_psi_matches_a_set_of_tuples(seed, batch):
    net = tiny_conv_net()
    x = images(batch, seed=seed)
    expected = slow_psi(net, x, gaussian_inits(net, 3, torch.Generator().manual_seed(seed)))
    assert psi(net, x, 3, torch.Generator().manual_seed(seed)) == expected
    assert psi(net, x, 3, torch.Generator().manual_seed(seed), chunk=1) == expected


@pytest.mark.parametrize("n_samples", [1, 16, 20, 21, 48, 63, 64, 65, 130])
def test_packed_patterns_count_like_python_sets(n_samples):
    # columns are neurons; duplicates, all-zero and all-one columns (the extreme codes) included
    generator = torch.Generator().manual_seed(n_samples)
    bits = (torch.rand(n_samples, 40, generator=generator) < 0.5).float()
    bits = torch.cat([bits, bits[:, :7], torch.zeros(n_samples, 3), torch.ones(n_samples, 2)], dim=1)
    expected = len({tuple(column) for column in bits.t().tolist()})
    words = (pack_weights(n_samples, "cpu") @ bits).unsqueeze(0)
    assert count_distinct(words.expand(2, -1, -1), n_samples).tolist() == [expected, expected]


@pytest.mark.parametrize("n_samples", [16, 48])  # a presence table filled as words arrive; words kept to the end
def test_patterns_added_piece_by_piece_count_as_one_set(n_samples):
    generator = torch.Generator().manual_seed(n_samples)
    bits = (torch.rand(3, n_samples, 90, generator=generator) < 0.5).float()
    bits[1, :, 45:] = bits[1, :, :45]  # the second half of init 1 repeats its first
    words = pack_weights(n_samples, "cpu") @ bits
    expected = [len({tuple(column) for column in bits[i].t().tolist()}) for i in range(3)]
    patterns = PatternSet(3, n_samples, "cpu")
    for piece in words.split([10, 35, 1, 44], dim=2):
        patterns.add(piece)
    assert patterns.counts().tolist() == expected == count_distinct(words, n_samples).tolist()
    assert expected[1] <= 45


def nan_propagating_sign(monkeypatch):
    """torch.sign as NumPy's: NaN stays NaN (this torch's CPU sign maps it to 0)."""
    sign = torch.sign
    monkeypatch.setattr(torch, "sign", lambda x: torch.where(torch.isnan(x), x, sign(x)))


@pytest.mark.parametrize("nan_sign", [False, True])
@pytest.mark.parametrize("copies", [1, 3])
def test_pattern_words_treat_nan_as_off_whether_zeroed_before_or_after(copies, nan_sign, monkeypatch):
    if nan_sign:
        nan_propagating_sign(monkeypatch)
        assert torch.isnan(torch.sign(torch.tensor(float("nan"))))
    output = torch.relu(torch.randn(5, 2 * copies, 3, 4, generator=torch.Generator().manual_seed(copies)))
    output[0, 1, 2, 3] = output[3, 0, 0, 0] = float("nan")
    pack = pack_weights(5, "cpu")
    for layout in (output, output.contiguous(memory_format=torch.channels_last)):
        eager, lazy = pattern_words(layout, pack, copies), pattern_words(layout, pack, copies, lazy_nan=True)
        assert torch.equal(eager, lazy)
        # NaN counts exactly like 0 (the layout fixes the neurons' order, so compare in the same one)
        assert torch.equal(eager, pattern_words(layout.nan_to_num(nan=0.0), pack, copies))
        assert not torch.isnan(eager).any()


def test_psi_with_batchnorm_matches_and_leaves_the_network_alone():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    net.eval()
    before = copy.deepcopy(net.state_dict())
    x = images(8, seed=5)
    expected = slow_psi(net, x, gaussian_inits(net, 4, torch.Generator().manual_seed(9)))
    assert psi(net, x, 4, torch.Generator().manual_seed(9)) == expected
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("nan_sign", [False, True])
# the paper network's set-of-tuples oracle takes half a minute: run it with -m slow
@pytest.mark.parametrize("preset", ["reference", pytest.param("paper", marks=pytest.mark.slow)])
def test_psi_of_a_replicated_network_matches_a_set_of_tuples(preset, nan_sign, monkeypatch):
    """The production path (all initialisations of a chunk in one forward pass of a
    `replicas=k` network, repeated ReLU inputs counted once) against Python sets, for a DARTS
    proxy network with every operation; float64, so both see the same signs."""
    genotype = Genotype(normal=[("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 0), ("max_pool_3x3", 2),
                                ("sep_conv_5x5", 1), ("avg_pool_3x3", 3), ("dil_conv_3x3", 0), ("sep_conv_3x3", 2)],
                        reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 0),
                                ("avg_pool_3x3", 1), ("sep_conv_5x5", 3), ("skip_connect", 2), ("dil_conv_5x5", 4)])
    net = build_proxy_network(genotype, preset).double()
    x = images(6, seed=2, size=32).double()
    expected = slow_psi(net, x, gaussian_inits(net, 5, torch.Generator().manual_seed(4)))

    def replicate(copies):
        return use_shift_pools(build_proxy_network(genotype, preset, replicas=copies).double())

    for chunk in (None, 2, 5):
        assert psi(net, x, 5, torch.Generator().manual_seed(4), chunk=chunk, replicate=replicate) == expected
    assert psi(net, x, 5, torch.Generator().manual_seed(4)) == expected  # the vmap path agrees
    # inf pixels make inf − inf in the first convolutions: NaN activations count as off, also
    # where sign keeps NaN and the lazy zeroing must recompute
    if nan_sign:
        nan_propagating_sign(monkeypatch)
    x[0, 0, 5, 5], x[1, 2, 9, 9] = float("inf"), float("-inf")
    expected = slow_psi(net, x, gaussian_inits(net, 5, torch.Generator().manual_seed(4)))
    assert psi(net, x, 5, torch.Generator().manual_seed(4), chunk=2, replicate=replicate) == expected


def test_relu_neurons_counts_every_4d_relu_output_element():
    net = tiny_conv_net()
    assert relu_neurons(net, images(3)) == 4 * 8 * 8 + 4 * 8 * 8 + 2 * 4 * 4


def test_gaussian_inits_follow_the_design():
    net = tiny_conv_net()
    weights = gaussian_inits(net, 5, torch.Generator().manual_seed(0))
    assert weights["0.weight"].shape == (5, 4, 3, 3, 3)
    assert torch.count_nonzero(weights["0.bias"]) == 0
    assert not torch.equal(weights["0.weight"][0], weights["0.weight"][1])
    drawn = torch.cat([w.flatten() for n, w in weights.items() if n.endswith("weight")])
    assert abs(float(drawn.mean())) < 0.1 and abs(float(drawn.std()) - 1.0) < 0.1


def test_psi_invariances():
    net = tiny_conv_net()
    x = images(10, seed=3)
    reference = psi(net, x, 4, torch.Generator().manual_seed(7))
    permuted = psi(net, x[torch.randperm(10, generator=torch.Generator().manual_seed(1))], 4,
                   torch.Generator().manual_seed(7))
    doubled = psi(net, torch.cat([x, x]), 4, torch.Generator().manual_seed(7))
    assert permuted == reference and doubled == reference
    same = psi(net, x[:1].expand(10, -1, -1, -1), 4, torch.Generator().manual_seed(7))
    assert 1.0 <= same <= 2.0  # every neuron is all-on or all-off
    assert psi(net, x, 4, torch.Generator().manual_seed(8)) != reference


def pool_genotype():
    return Genotype(normal=[("max_pool_3x3", 0), ("avg_pool_3x3", 1)] * 4,
                    reduce=[("max_pool_3x3", 0), ("avg_pool_3x3", 1)] * 4)


def test_shift_pools_compute_the_same_network():
    net = build_proxy_network(pool_genotype(), "reference")
    fast = use_shift_pools(copy.deepcopy(net))
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in fast.modules())
    x = images(2, size=32)
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), rtol=1e-4, atol=1e-6)
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    y = torch.randn(2, 3, 9, 9)
    assert torch.equal(use_shift_pools(nn.Sequential(pool))(y), pool(y))
    for include in (True, False):
        pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=include)
        assert torch.allclose(use_shift_pools(nn.Sequential(pool))(y), pool(y), atol=1e-6)
    odd = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
    assert isinstance(use_shift_pools(nn.Sequential(odd))[0], nn.MaxPool2d)


# ---------------------------------------------------------------- Φ
W1 = [[0.5, -0.3, 0.8], [-0.6, 0.4, 0.2], [0.3, 0.9, -0.5], [-0.2, -0.7, 0.6]]
B1 = [0.1, -0.15, 0.05, 0.02]
W2 = [[0.7, -0.4, 0.2, 0.5], [-0.3, 0.6, -0.8, 0.1], [0.4, 0.2, 0.3, -0.6]]
B2 = [0.0, 0.1, -0.1]
X = [[0.2, 0.7, 0.5], [1.0, 0.1, 0.0], [0.4, 0.4, 0.9], [0.0, 1.0, 0.3]]  # 0s and 1s: the clamp bites
Y = [0, 2, 1, 1]


def two_layer_net():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        for parameter, value in zip(net.parameters(), (W1, B1, W2, B2)):
            parameter.copy_(torch.tensor(value))
    return net


def by_hand(beta, epsilon, gamma, similarity, clamp):
    """Φ of the two-layer network with forward, backward and FGSM written out."""
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    theta = [t(W1), t(B1), t(W2), t(B2)]
    x, y = t(X), torch.tensor(Y)
    onehot = torch.eye(3, dtype=torch.float64)[y]

    def forward(params, inputs):
        w1, b1, w2, b2 = params
        z1 = inputs @ w1.T + b1
        h = z1.clamp(min=0)
        return z1, h, h @ w2.T + b2

    def backward(params, inputs):
        w1, b1, w2, b2 = params
        z1, h, z2 = forward(params, inputs)
        p = torch.exp(z2 - z2.max(1, keepdim=True).values)
        p = p / p.sum(1, keepdim=True)
        d2 = (p - onehot) / len(inputs)  # mean cross-entropy
        d1 = (d2 @ w2) * (z1 > 0)
        return [d1.T @ inputs, d1.sum(0), d2.T @ h, d2.sum(0)], d1 @ w1

    def sim(a, b):
        a, b = a.flatten(), b.flatten()
        if similarity == "cosine":
            return 1 + (a @ b) / (a.norm() * b.norm())
        p, q = torch.exp(a) / torch.exp(a).sum(), torch.exp(b) / torch.exp(b).sum()
        m = (p + q) / 2
        js = 0.5 * (p * torch.log(p / m)).sum() + 0.5 * (q * torch.log(q / m)).sum()
        return 1 / (1 + js)

    g, _ = backward(theta, x)
    robust = [th + beta * gr / gr.norm() * th.norm() for th, gr in zip(theta, g)]
    _, dx = backward(robust, x)
    x_adv = x + epsilon * torch.sign(dx)
    if clamp:
        x_adv = x_adv.clamp(0, 1)
    g_r, _ = backward(robust, x_adv)
    theta_1 = [th - gamma * gr for th, gr in zip(theta, g)]
    robust_1 = [th - gamma * gr for th, gr in zip(robust, g_r)]
    z1, _, z2 = forward(theta, x)
    z1_r, _, z2_r = forward(robust, x_adv)
    return float(sim(z1, z1_r) * sim(theta_1[0], robust_1[0]) + sim(z2, z2_r) * sim(theta_1[2], robust_1[2]))


@pytest.mark.parametrize("similarity", ["cosine", "js"])
@pytest.mark.parametrize("clamp", [True, False])
def test_phi_matches_the_hand_computation(similarity, clamp):
    knobs = dict(beta=0.5, epsilon=0.1, gamma=0.5)
    net = two_layer_net()
    value = phi(net, torch.tensor(X), torch.tensor(Y), similarity=similarity, generator=None,
                input_range=(0.0, 1.0) if clamp else None, **knobs)
    assert value == pytest.approx(by_hand(similarity=similarity, clamp=clamp, **knobs), rel=1e-5)
    for parameter, original in zip(net.parameters(), (W1, B1, W2, B2)):
        assert torch.equal(parameter.detach(), torch.tensor(original))  # left as it was


def test_phi_clamp_makes_a_difference_here():
    knobs = dict(beta=0.5, epsilon=0.1, gamma=0.5, similarity="cosine")
    assert by_hand(clamp=True, **knobs) != pytest.approx(by_hand(clamp=False, **knobs), rel=1e-6)


@pytest.mark.parametrize("similarity, per_layer", [("cosine", 2.0 * 2.0), ("js", 1.0)])
def test_phi_without_perturbation_counts_the_layers(similarity, per_layer):
    net = build_proxy_network(load_genotypes_or_default(), "reference")
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())
    x = images(4, size=32)
    value = phi(net, x, torch.tensor([0, 1, 2, 3]), beta=0.0, epsilon=0.0, gamma=0.0, similarity=similarity,
                generator=torch.Generator().manual_seed(0), input_range=None)
    assert value == pytest.approx(layers * per_layer, rel=1e-4)


def test_default_init_is_pytorch_default_from_the_seed():
    with torch.random.fork_rng():
        torch.manual_seed(11)
        expected = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    net = copy.deepcopy(expected)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(0.123)
    values = default_init(net, torch.Generator().manual_seed(11))
    for name, parameter in expected.named_parameters():
        assert torch.equal(values[name], parameter.detach()), name


def test_phi_passes_nan_through_without_raising():
    net = two_layer_net()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    value = phi(net, torch.tensor(X), torch.tensor(Y), beta=0.5, epsilon=0.1, gamma=0.5, similarity="cosine")
    assert math.isnan(value)


# ---------------------------------------------------------------- scores
def test_normalisation_by_hand():
    components = [{"psi": math.e ** 1, "phi": math.e ** 0.5},
                  {"psi": math.e ** 2, "phi": math.e ** 1.0},
                  {"psi": math.e ** 3, "phi": math.e ** 1.5}]
    scorer = get_proxy("rscore", device="cpu")
    calibration = scorer.calibrate(components)
    assert calibration["log_psi"] == pytest.approx([1, 3]) and calibration["log_phi"] == pytest.approx([0.5, 1.5])
    expected = [1.0 * 1.0, math.sqrt(50.5) * 50.5, 10.0 * 100.0]
    assert [scorer.score(c, calibration) for c in components] == pytest.approx(expected)
    assert normalise_over_set(components) == pytest.approx(expected)
    # above the calibration range: the same line, no ceiling (log Ψ = 9 is t = 4, log Φ = 2.5 is t = 2)
    assert scorer.score({"psi": math.e ** 9, "phi": math.e ** 2.5}, calibration) == pytest.approx(
        math.sqrt(1 + 99 * 4) * (1 + 99 * 2))
    # below it: 1 / (1 − 99·t), positive (log Φ = −4 is t = −4.5)
    assert scorer.score({"psi": math.e ** 1, "phi": math.e ** -4}, calibration) == pytest.approx(1 / (1 + 99 * 4.5))
    # no calibration: the raw product
    assert scorer.score({"psi": 16.0, "phi": 3.0}, None) == pytest.approx(12.0)
    # one distinct calibration value: t in natural-log units from it
    flat = scorer.calibrate(components[:1])
    assert scorer.score(components[0], flat) == pytest.approx(1.0)
    assert scorer.score(components[2], flat) == pytest.approx(math.sqrt(1 + 99 * 2) * (1 + 99 * 1))


def test_no_tie_above_the_calibration_range_and_strictly_increasing_everywhere():
    calibration = {"log_psi": [1.0, 3.0], "log_phi": [0.5, 1.5]}
    logs = np.unique(np.concatenate([np.linspace(-40, 60, 397), [1.0, 3.0, 0.5, 1.5]]))
    psi_scaled = [rescale(v, calibration["log_psi"]) for v in logs]
    assert all(value > 0 for value in psi_scaled)
    assert np.all(np.diff(psi_scaled) > 0)
    # the two calibration maxima and everything above them stay apart, in Ψ and in Φ alike
    high = [rscore_value({"psi": math.exp(p), "phi": math.exp(1.5)}, calibration) for p in (3.0, 3.5, 10.0, 50.0)]
    assert np.all(np.diff(high) > 0)
    high = [rscore_value({"psi": math.exp(3.0), "phi": math.exp(f)}, calibration) for f in (1.5, 2.0, 9.0)]
    assert np.all(np.diff(high) > 0)
    # smooth at the bottom of the range: the two pieces meet with the same slope
    step = 1e-7
    below = (rescale(1.0, (1.0, 3.0)) - rescale(1.0 - step, (1.0, 3.0))) / step
    above = (rescale(1.0 + step, (1.0, 3.0)) - rescale(1.0, (1.0, 3.0))) / step
    assert below == pytest.approx(above, rel=1e-4) == pytest.approx(49.5, rel=1e-4)


@pytest.mark.parametrize("bad", [{"psi": float("nan"), "phi": 2.0}, {"psi": 5.0, "phi": float("inf")},
                                 {"psi": 0.0, "phi": 2.0}, {"psi": 5.0, "phi": -1.0}, {"psi": 5.0}])
def test_non_finite_or_non_positive_is_flagged_and_ignored(bad):
    scorer = get_proxy("rscore", device="cpu")
    good = [{"psi": 10.0, "phi": 2.0}, {"psi": 1000.0, "phi": 8.0}]
    assert not scorer.is_valid(bad)
    assert math.isnan(scorer.score(bad, None))
    assert math.isnan(scorer.score(bad, scorer.calibrate(good)))
    assert scorer.calibrate(good + [bad]) == scorer.calibrate(good)
    assert scorer.calibrate([bad]) is None
    assert all(scorer.is_valid(c) for c in good)
    assert math.isnan(normalise_over_set(good + [bad])[-1])


def test_malformed_calibration_is_a_proxy_error():
    scorer = get_proxy("rscore", device="cpu")
    with pytest.raises(ProxyError):
        scorer.score({"psi": 4.0, "phi": 1.0}, {"log_psi": [2.0, 1.0], "log_phi": [0.0, 1.0]})
    with pytest.raises(ProxyError):
        scorer.score({"psi": 4.0, "phi": 1.0}, {"log_psi": [0.0, 1.0]})


# ---------------------------------------------------------------- the proxy on real genotypes
def load_genotypes_or_default():
    if GENOTYPES.is_file():
        return load_genotypes(GENOTYPES)["DARTS_V2"]
    return pool_genotype()


def darts_v2():
    if not GENOTYPES.is_file():
        pytest.skip("../shared/data not present")
    return load_genotypes(GENOTYPES)["DARTS_V2"]


@pytest.mark.parametrize("preset, knobs", [("reference", {}), ("paper", {"n_images": 8, "psi_inits": 2})])
def test_both_presets_give_finite_positive_components(preset, knobs):
    data = load_dataset("digits")
    scorer = get_proxy(f"rscore:{preset}", device="cpu", mean=data.mean, std=data.std, **knobs)
    x, y = proxy_batch(data, scorer.config["n_images"])
    components = scorer.measure(darts_v2(), x, y, seed=0)
    assert set(components) == {"psi", "phi"}
    assert scorer.is_valid(components), components
    assert all(isinstance(v, float) for v in components.values())
    assert math.isfinite(scorer.score(components, None))


def test_measure_is_reproducible_and_order_independent():
    data = load_dataset("digits")
    scorer = get_proxy("rscore", device="cpu", psi_inits=2, n_images=8, mean=data.mean, std=data.std)
    x, y = proxy_batch(data, 8)
    genotype, other = darts_v2(), load_genotypes(GENOTYPES)["RACL"]
    first = scorer.measure(genotype, x, y, seed=0)
    scorer.measure(other, x, y, seed=1)
    torch.rand(5)  # global RNG state must not matter
    assert scorer.measure(genotype, x, y, seed=0) == first
    assert scorer.measure(genotype, x, y, seed=1) != first


@pytest.mark.parametrize("name", ["rscore", "synflow"])
def test_proxies_measure_without_tf32_or_autotuning_and_restore_the_settings(name, monkeypatch):
    """On a GPU, TF32 rounding and autotuned kernels would make scores depend on the process
    that computed them; the settings a proxy sees are checked here, where no GPU is needed."""
    import evaluation.rscore.proxy as rscore_module
    from evaluation.zoo import synflow as synflow_module
    seen = []
    module, function = (rscore_module, "psi") if name == "rscore" else (synflow_module.Synflow, "compute")
    original = getattr(module, function)

    def recording(*args, **kwargs):
        cudnn = torch.backends.cudnn
        seen.append((cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, function, recording)
    data = load_dataset("digits")
    x, y = proxy_batch(data, 8)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    scorer = get_proxy(name, device="cpu", n_images=8, mean=data.mean, std=data.std,
                       **({"psi_inits": 2} if name == "rscore" else {}))
    scorer.measure(darts_v2(), x, y, seed=0)
    assert seen == [(False, False, True)]
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.benchmark


def test_measure_needs_enough_valid_images():
    data = load_dataset("digits")
    scorer = get_proxy("rscore", device="cpu")
    x, y = proxy_batch(data, 8)
    with pytest.raises(ProxyError, match="needs 16 images"):
        scorer.measure(load_genotypes_or_default(), x, y, seed=0)
    x, y = proxy_batch(data, 16)
    with pytest.raises(ProxyError, match="labels"):
        get_proxy("rscore", device="cpu", num_classes=3).measure(load_genotypes_or_default(), x, y, seed=0)


def test_similarities_at_their_extremes():
    from evaluation.rscore import cosine_similarity, js_similarity
    a = torch.tensor([1000.0, -1000.0, 0.0])
    assert float(js_similarity(a, a)) == pytest.approx(1.0)
    assert float(js_similarity(a, -a)) == pytest.approx(1 / (1 + math.log(2)), rel=1e-5)  # disjoint
    assert float(cosine_similarity(a, a)) == pytest.approx(2.0)
    assert float(cosine_similarity(a, -a)) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(float(js_similarity(torch.tensor([float("nan"), 1.0, 2.0]), a)))


@pytest.mark.parametrize("name", ["cosine", "js"])
def test_paired_similarities_equal_one_pair_at_a_time(monkeypatch, name):
    """Φ's batched similarities: pairs of several sizes, in mixed order, some batches split by
    the element limit, one pair holding a NaN; each value is that pair's own similarity, as
    the one-pair call and as the reference implementation's float64 formula give it."""
    from evaluation.rscore import similarity as similarities
    from reference_rscore import REFERENCE_SIMILARITIES
    similarity = similarities.SIMILARITIES[name]
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 3, 4, 4), (5,), (2, 3, 4, 4), (7, 1), (5,), (2, 3, 4, 4), (2, 3, 4, 4), (1,)]
    first = [torch.randn(s, generator=generator) * 4 for s in shapes]
    second = [a + torch.randn(a.shape, generator=generator) for a in first]
    second[3] = second[3].clone()
    second[3][0, 0] = float("nan")
    monkeypatch.setitem(similarities.SIMILARITY_BATCH_ELEMENTS, "cpu", 200)  # 2 rows of 96 per batch
    batched = similarities.paired_similarities(similarity, first, second)
    one_by_one = torch.stack([similarity(a.flatten(), b.flatten()) for a, b in zip(first, second)])
    assert batched.shape == (len(shapes),)
    assert torch.allclose(batched, one_by_one, rtol=1e-6, atol=0, equal_nan=True)
    written_out = torch.stack([REFERENCE_SIMILARITIES[name](a, b) for a, b in zip(first, second)]).float()
    assert torch.allclose(batched, written_out, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert math.isnan(float(batched[3])) and not torch.isnan(batched[[0, 1, 2, 4, 5, 6, 7]]).any()
    assert similarities.paired_similarities(similarity, [], []).numel() == 0
    with pytest.raises(ValueError, match=r"pair 1 has shapes \(5,\) and \(1,\)"):
        similarities.paired_similarities(similarity, first[:2], [second[0], torch.ones(1)])


def test_stateless_calls_keep_tied_weights_tied():
    """A network holding one weight under two names gets it replaced under both (functional_call's
    tie_weights), one without ties runs without it; both give the plain forward's numbers."""
    torch.manual_seed(0)
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 4, bias=False))
    tied[2].weight = tied[0].weight
    untied = copy.deepcopy(tied)
    untied[2].weight = nn.Parameter(untied[0].weight.detach().clone())
    x, weight = torch.randn(3, 4), torch.randn(4, 4)
    expected = torch.relu(x @ weight.t()) @ weight.t()
    # named_parameters lists a tied weight once: only its first name is given
    assert [n for n, _ in tied.named_parameters()] == ["0.weight"]
    assert torch.allclose(stateless(tied)({"0.weight": weight}, x), expected)
    assert torch.allclose(stateless(untied)({"0.weight": weight, "2.weight": weight}, x), expected)
