"""The proxy zoo: values computed by hand on tiny networks, invariances the definitions
imply, the direction convention, and that every proxy runs on a DARTS and an NB201 cell."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import evaluation.zoo  # noqa: F401  (registers the zoo)
from evaluation.registry import ProxyError, available_proxies, get_proxy
from evaluation.zoo import (croze, feature_distortion, fisher, grad_norm, grasp, jacob_cov, naswot,
                            output_similarity, snip, synflow, zcprob)
from evaluation.zoo._common import cosine
from nas_problem import Genotype, count_flops, count_params
from nas_problem.nb201 import NB201Genotype, build_nb201_network

ZOO = ["croze", "feature_distortion", "output_similarity", "swap", "naswot", "synflow", "grad_norm", "snip",
       "grasp", "fisher", "jacob_cov", "params", "flops", "zcprob"]
PAIRS = [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 2),
         ("avg_pool_3x3", 1), ("sep_conv_5x5", 3), ("skip_connect", 2), ("dil_conv_5x5", 4)]
GENOTYPE = Genotype(normal=PAIRS, reduce=PAIRS)
NB201 = NB201Genotype.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
                            "skip_connect~2|")


def batch(n=4, seed=0, size=16):
    """Small images keep the suite fast: every network here ends in global pooling."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def linear_net(d=5, h=4, o=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h, bias=False), nn.Linear(h, o, bias=False))


def softmax_grad(logits, y):
    """∂ mean-CE / ∂ logits, by hand."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


# ----------------------------------------------------------------- registry conventions
def test_every_zoo_proxy_is_registered_with_the_shared_knobs():
    assert set(ZOO) <= set(available_proxies())
    for name in ZOO:
        p = get_proxy(name, device="cpu", num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                      preset="paper", n_images=4)
        assert p.name == name and p.direction == +1
        assert p.config["preset"] == "paper" and p.config["n_images"] == 4


def test_bad_knobs_and_presets_are_proxy_errors():
    with pytest.raises(ProxyError):
        get_proxy("snip", device="cpu", bogus=1)
    with pytest.raises(ProxyError):
        get_proxy("croze:nonsense", device="cpu")


def test_docstrings_state_network_batch_and_knobs():
    import importlib
    for name in ZOO:
        module = importlib.import_module(f"evaluation.zoo.{'params' if name == 'flops' else name}")
        doc = module.__doc__ or ""
        assert "Network" in doc or "network" in doc, name
        assert "Knobs" in doc or "knobs" in doc, name


def test_score_is_the_measured_value_and_non_finite_is_flagged():
    p = get_proxy("grad_norm", device="cpu")
    assert p.score({"score": 2.5}) == 2.5 and p.is_valid({"score": 2.5})
    for bad in ({"score": math.nan}, {"score": math.inf}, {"score": 1.0, "degenerate": 1.0}, {"error": 1.0}):
        assert not p.is_valid(bad)
        assert math.isnan(p.score(bad, p.calibrate([bad])))


# ----------------------------------------------------------------- values by hand
def test_synflow_of_a_two_layer_linear_net_is_twice_the_path_sum():
    net = linear_net()
    w1, w2 = net[0].weight.detach().abs().double().numpy(), net[1].weight.detach().abs().double().numpy()
    expected = 2 * (np.ones(3) @ w2 @ w1 @ np.ones(5))  # each layer's Σ W ⊙ ∂R/∂W equals R
    assert synflow.synflow_score(net, (5,)) == pytest.approx(expected, rel=1e-10)


def test_synflow_is_independent_of_the_input_data():
    p = get_proxy("synflow", device="cpu")
    x1, y1 = batch(4, seed=1)
    x2, y2 = batch(4, seed=2)
    assert p.measure(GENOTYPE, x1, y1, 0)["score"] == p.measure(GENOTYPE, x2, y2, 0)["score"]


def test_grad_norm_snip_and_fisher_of_one_linear_layer_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 3, bias=False))
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    w, xs = net[0].weight.detach().double().numpy(), x.double().numpy()
    logits = xs @ w.T
    g_logits = softmax_grad(logits, y.numpy())
    grad_w = g_logits.T @ xs
    assert grad_norm.grad_norm_score(net, x, y) == pytest.approx(np.linalg.norm(grad_w), rel=1e-5)
    assert snip.snip_score(net, x, y) == pytest.approx(np.abs(w * grad_w).sum(), rel=1e-5)
    # fisher: activation a = logits, gradient g_logits; per channel ½ · mean_n (a·g)²
    assert fisher.fisher_score(net, x, y) == pytest.approx(0.5 * ((logits * g_logits) ** 2).mean(0).sum(), rel=1e-4)


def test_grasp_matches_an_explicit_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()]).double()

    def loss_of(theta):
        w1 = theta[:12].view(shapes[0]).float()
        w2 = theta[12:].view(shapes[1]).float()
        return F.cross_entropy(torch.tanh(x @ w1.T) @ w2.T, y).double()

    g = torch.autograd.functional.jacobian(loss_of, flat)
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    expected = float(-(flat * (hessian @ g)).sum())
    assert grasp.grasp_score(net, x, y) == pytest.approx(expected, rel=1e-3, abs=1e-7)


def test_naswot_kernel_and_logdet_by_hand():
    net = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])
    codes = (x > 0).double().numpy()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T  # agreements: 3 on the diagonal
    assert np.allclose(naswot.hamming_kernel(naswot.binary_codes(net, x)), kernel)
    assert kernel.tolist() == [[3, 2, 0], [2, 3, 1], [0, 1, 3]]
    assert naswot.naswot_score(net, x) == pytest.approx(math.log(abs(np.linalg.det(kernel))))


def test_naswot_is_invariant_to_batch_order():
    p = get_proxy("naswot", device="cpu")
    x, y = batch(6)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    assert p.measure(GENOTYPE, x, y, 0)["score"] == pytest.approx(p.measure(GENOTYPE, x[order], y[order], 0)["score"])


def test_jacob_cov_of_a_linear_model_by_hand():
    # f(x) = Wx: every image has the same input Jacobian, so the correlation matrix is all ones
    # with eigenvalues (B, 0, ..., 0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(4, 3, 2, 2)
    v = np.array([0.0, 0.0, 0.0, 4.0])
    expected = -np.sum(np.log(v + jacob_cov.K) + 1 / (v + jacob_cov.K))
    assert jacob_cov.jacob_cov_score(net, x) == pytest.approx(expected, rel=1e-6)


def test_params_and_flops_are_the_evaluation_network_size():
    x, y = batch(2)
    assert get_proxy("params", device="cpu").measure(GENOTYPE, x, y, 0)["score"] == pytest.approx(
        count_params(GENOTYPE))
    assert get_proxy("flops", device="cpu").measure(GENOTYPE, x, y, 0)["score"] == pytest.approx(
        count_flops(GENOTYPE))
    nb_params = sum(p.numel() for p in build_nb201_network(NB201).parameters()) / 1e6
    assert get_proxy("params", device="cpu").measure(NB201, x, y, 0)["score"] == pytest.approx(nb_params)


def tiny_conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def test_croze_without_perturbation_is_four_per_layer():
    # β = ε = 0: the robust surrogate is the clean one, so Z = P = 2 and G = 1 on each of the 2 layers
    x, y = batch(4)
    terms = croze.croze_terms(tiny_conv_net(), x, y, beta=0.0, epsilon=0.0, gamma=1e-3)
    assert terms["score"] == pytest.approx(8.0, rel=1e-6)


def test_croze_perturbation_lowers_consistency():
    x, y = batch(4)
    clean = croze.croze_terms(tiny_conv_net(), x, y, 0.0, 0.0, 1e-3)["score"]
    perturbed = croze.croze_terms(tiny_conv_net(), x, y, 2.0, 8 / 255, 1e-3)["score"]
    assert 0 < perturbed < clean


def test_cosine_treats_zero_vectors_as_orthogonal():
    assert cosine(torch.zeros(3), torch.ones(3)) == 0.0
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == pytest.approx(1.0)


def test_channel_kl_by_hand_and_zero_distortion_without_attack():
    z = torch.tensor([[[[0.0, 1.0]]]])
    za = torch.tensor([[[[1.0, 0.0]]]])
    p = np.exp([0, 1]) / np.exp([0, 1]).sum()
    q = p[::-1]
    assert float(feature_distortion.channel_kl(z, za)) == pytest.approx(float(np.sum(p * np.log(p / q))))
    p_fd = get_proxy("feature_distortion", device="cpu", epsilon=0.0)
    x, y = batch(4)
    c = p_fd.measure(GENOTYPE, x, y, 0)
    assert c["vulnerability"] == pytest.approx(0.0, abs=1e-12)
    attacked = get_proxy("feature_distortion", device="cpu", preset="paper").measure(GENOTYPE, x, y, 0)
    # direction: more distortion -> lower score
    assert attacked["vulnerability"] > 0 and attacked["score"] == pytest.approx(-attacked["vulnerability"])
    assert attacked["score"] < c["score"]


def test_output_similarity_pearson_by_hand_and_one_without_noise():
    a, b = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 7.0]])
    assert float(output_similarity.pearson_rows(a, b)) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    x, y = batch(4)
    assert get_proxy("output_similarity", device="cpu", epsilon=0.0).measure(GENOTYPE, x, y, 0)["score"] == \
        pytest.approx(1.0)


def test_zcprob_terms_by_hand():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    # halves {g0, g1} x {g2, g3}: cosines 1, 0, 0, 1
    assert zcprob.ntk_agreement(g) == pytest.approx(0.5)
    assert zcprob.ntk_agreement(torch.cat([g[:2], -g[:2]])) == pytest.approx(-0.5)
    net = tiny_conv_net()
    x, y = batch(4)
    assert zcprob.cure_curvature(net, x, y, 0.0) == 0.0
    c = get_proxy("zcprob", device="cpu").measure(GENOTYPE, x, y, 0)
    assert c["curvature"] > 0
    assert c["score"] == pytest.approx(math.log1p(c["ntk_agreement"]) - math.log(c["curvature"]))


def test_swap_is_rscore_psi_and_invariant_to_batch_order():
    from evaluation.rscore import psi
    p = get_proxy("swap", device="cpu", inits=2)
    x, y = batch(6)
    value = p.measure(GENOTYPE, x, y, 3)["score"]
    net = p.network(GENOTYPE, 3)
    assert value == psi(net.body, net.normalize(x), 2, torch.Generator().manual_seed(3))
    order = torch.tensor([5, 4, 3, 2, 1, 0])
    assert p.measure(GENOTYPE, x[order], y[order], 3)["score"] == value


# ----------------------------------------------------------------- all proxies, both spaces
@pytest.mark.parametrize("name", ZOO)
def test_every_proxy_gives_a_finite_seeded_score_on_darts_and_nb201(name):
    knobs = {"inits": 1} if name == "swap" else {}
    p = get_proxy(name, device="cpu", **knobs)
    x, y = batch(4)
    first = p.measure(GENOTYPE, x, y, 0)
    assert p.is_valid(first) and math.isfinite(p.score(first, p.calibrate([first])))
    assert p.measure(GENOTYPE, x, y, 0) == first  # the seed fixes the value
    assert math.isfinite(p.measure(NB201, x, y, 0)["score"])


def test_a_disconnected_nb201_cell_is_flagged_not_ranked():
    dead = NB201Genotype(("nor_conv_3x3", "nor_conv_3x3", "none", "none", "none", "none"))
    x, y = batch(4)
    for name in ("grad_norm", "croze", "feature_distortion"):
        p = get_proxy(name, device="cpu")
        c = p.measure(dead, x, y, 0)
        assert not p.is_valid(c) and math.isnan(p.score(c))


@pytest.mark.parametrize("error", [torch.AcceleratorError("CUDA error: device-side assert triggered"),
                                   torch.OutOfMemoryError("CUBLAS_STATUS_ALLOC_FAILED")])
def test_device_failures_propagate_instead_of_becoming_a_nan_score(error, monkeypatch):
    """A numeric failure flags the architecture; a failing device must stop the run instead."""
    def raising(exception):
        def compute(*args, **kwargs):
            raise exception
        return compute

    p = get_proxy("grad_norm", device="cpu")
    x, y = batch(4)
    monkeypatch.setattr(type(p), "compute", raising(error))
    with pytest.raises(type(error)):
        p.measure(GENOTYPE, x, y, 0)
    monkeypatch.setattr(type(p), "compute", raising(RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
    assert math.isnan(p.measure(GENOTYPE, x, y, 0)["score"])
