"""The differentiable searches (RNAS-OS, RNAS-FD) and their DARTS supernet: the mixed operation
is the softmax-weighted sum it is defined as, a one-hot α makes the supernet the discrete network
of its genotype, derivation follows DARTS, the regulariser and the vulnerability vanish on
identical inputs, the projection finds the nearest feasible point, and a resumed search equals an
uninterrupted one bit for bit."""
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from differentiable import (ALGORITHMS, InsufficientMemoryError, SearchError, defaults_for,
                            run_differentiable_search)
from differentiable import memory
from differentiable.feature_distortion import network_vulnerability
from differentiable.output_similarity import DIVERGENCES, DivergencePGD, uniform_in_ball
from differentiable.projection import project
from nas_problem import DartsNetwork, Genotype
from nas_problem.supernet import CANDIDATE_OPS, MixedOp, Supernet, derive_genotype, edge_inputs

CONFIGS = Path(__file__).resolve().parents[1] / "trnas" / "configs"


def one_hot_alpha(cell: list) -> torch.Tensor:
    """α (−inf but one 0 per row) that keeps exactly ``cell``'s (op, input) pairs, ``none`` elsewhere."""
    alpha = torch.full((len(edge_inputs()), len(CANDIDATE_OPS)), -math.inf)
    alpha[:, CANDIDATE_OPS.index("none")] = 0.0
    for position, (op, state) in enumerate(cell):
        edge = edge_inputs().index((position // 2, state))
        alpha[edge] = -math.inf
        alpha[edge, CANDIDATE_OPS.index(op)] = 0.0
    return alpha


def test_a_mixed_operation_is_the_softmax_weighted_sum_of_its_candidates():
    torch.manual_seed(0)
    mixed = MixedOp(4, stride=1)
    weights = F.softmax(torch.randn(len(CANDIDATE_OPS)), dim=-1)
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    x = torch.randn(3, 4, 8, 8)
    by_hand = torch.zeros(3, 4, 8, 8)
    for w, op in zip(weights.tolist(), mixed.ops):
        by_hand += w * op(x)
    assert torch.allclose(mixed(x, weights), by_hand, atol=1e-6)
    supernet = Supernet(channels=4, layers=3)
    for alpha in supernet.arch_parameters():
        assert torch.allclose(F.softmax(alpha, dim=-1).sum(-1), torch.ones(len(edge_inputs())))


def test_a_supernet_with_one_hot_alpha_computes_the_network_of_its_genotype():
    torch.manual_seed(0)
    cells = [[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("sep_conv_5x5", 0),
              ("skip_connect", 2), ("dil_conv_5x5", 3), ("sep_conv_3x3", 4), ("skip_connect", 1)],
             [("sep_conv_5x5", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("sep_conv_3x3", 1),
              ("dil_conv_5x5", 0), ("skip_connect", 3), ("sep_conv_3x3", 2), ("dil_conv_3x3", 4)]]
    supernet = Supernet(channels=4, layers=3)
    with torch.no_grad():
        supernet.alpha_normal.copy_(one_hot_alpha(cells[0]))
        supernet.alpha_reduce.copy_(one_hot_alpha(cells[1]))
    genotype = supernet.genotype()
    assert genotype.canonical() == Genotype(*cells).canonical()
    network = DartsNetwork(genotype, channels=4, layers=3)
    network.stem.load_state_dict(supernet.stem.state_dict())
    network.classifier.load_state_dict(supernet.classifier.state_dict())
    for cell, search_cell in zip(network.cells, supernet.cells):
        # the supernet's BatchNorms have no scale and shift: the network's are at their initial 1 and 0
        for name in ("preprocess0", "preprocess1"):
            getattr(cell, name).load_state_dict(getattr(search_cell, name).state_dict(), strict=False)
        for position, (op, state) in enumerate(genotype.reduce if cell.reduction else genotype.normal):
            edge = edge_inputs().index((position // 2, state))
            cell.ops[position].load_state_dict(search_cell.edges[edge].ops[CANDIDATE_OPS.index(op)].state_dict(),
                                               strict=False)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(supernet(x), network(x), atol=1e-5)


def test_derivation_keeps_per_node_the_two_inputs_with_the_strongest_operation_other_than_none():
    alpha = torch.zeros(len(edge_inputs()), len(CANDIDATE_OPS))

    def set_edge(node, state, **values):
        for op, value in values.items():
            alpha[edge_inputs().index((node, state)), CANDIDATE_OPS.index(op)] = value

    set_edge(0, 0, sep_conv_3x3=2.0)
    set_edge(0, 1, none=6.0, max_pool_3x3=1.0)
    # node 1: `none` dominates the edge from state 0, so that edge is the weakest despite its 10
    set_edge(1, 0, none=10.0, skip_connect=3.0)
    set_edge(1, 1, sep_conv_5x5=2.0)
    set_edge(1, 2, dil_conv_3x3=1.0)
    set_edge(2, 3, avg_pool_3x3=4.0)
    set_edge(2, 0, dil_conv_5x5=3.0)
    set_edge(3, 4, skip_connect=5.0)
    set_edge(3, 2, sep_conv_3x3=0.5, none=0.4)
    genotype = derive_genotype(alpha, alpha)
    assert list(genotype.normal) == [
        ("sep_conv_3x3", 0), ("max_pool_3x3", 1),
        ("sep_conv_5x5", 1), ("dil_conv_3x3", 2),
        ("avg_pool_3x3", 3), ("dil_conv_5x5", 0),
        ("skip_connect", 4), ("sep_conv_3x3", 2)]


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_the_regulariser_is_zero_on_identical_inputs_and_grows_with_the_perturbation(name):
    f, model = DIVERGENCES[name], linear_model()
    x = torch.rand(8, 3, 4, 4)
    direction = torch.randn_like(x)
    with torch.no_grad():
        clean = model(x)
        values = [float(f(model(x + t * direction), clean)) for t in (0.0, 0.01, 0.03, 0.1, 0.3)]
    assert abs(values[0]) < 1e-6
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_pgd_finds_a_larger_divergence_than_uniform_noise_within_the_same_ball():
    model, x = linear_model(), torch.rand(16, 3, 4, 4)
    torch.manual_seed(1)
    worst = DivergencePGD(model, DIVERGENCES["kl"], eps=0.031, alpha=0.003, steps=10)(x)
    noisy = uniform_in_ball(x, 0.031)
    for x_prime in (worst, noisy):
        assert float((x_prime - x).abs().max()) <= 0.031 + 1e-6 and 0 <= float(x_prime.min()) <= float(x_prime.max()) <= 1
    with torch.no_grad():
        assert DIVERGENCES["kl"](model(worst), model(x)) > 5 * DIVERGENCES["kl"](model(noisy), model(x))


def test_the_network_vulnerability_is_zero_on_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    supernet, x = Supernet(channels=4, layers=2), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert float(network_vulnerability(supernet, x, x)) == 0.0
        assert float(network_vulnerability(supernet, x, x + 0.1 * torch.randn_like(x))) > 0.0


def squared_norm(point):
    point = point.detach().requires_grad_(True)
    value = point.pow(2).sum()
    return value.item(), torch.autograd.grad(value, point)[0]


def test_the_projection_returns_the_nearest_point_of_the_feasible_set():
    # onto {‖a‖² ≤ 1}: the nearest point to (3, 4) is (0.6, 0.8)
    result = project(torch.tensor([3.0, 4.0], dtype=torch.float64), squared_norm, bound=1.0, iterations=12)
    assert squared_norm(result.alpha)[0] <= 1.0 + 1e-12
    assert torch.allclose(result.alpha, torch.tensor([0.6, 0.8], dtype=torch.float64), atol=1e-9)
    assert result.multiplier == pytest.approx(2.0)  # a − ν·2a = a/5 at the solution
    generator = torch.Generator().manual_seed(0)
    others = torch.nn.functional.normalize(torch.randn(1000, 2, generator=generator, dtype=torch.float64), dim=1)
    others = others * torch.rand(1000, 1, generator=generator, dtype=torch.float64)
    distance = float((result.alpha - torch.tensor([3.0, 4.0], dtype=torch.float64)).norm())
    assert float((others - torch.tensor([3.0, 4.0], dtype=torch.float64)).norm(dim=1).min()) >= distance - 1e-9
    # a half-space {c·a ≤ 1} takes one step; a feasible point does not move
    c = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
    linear = lambda point: (float(c @ point), c)  # noqa: E731
    assert torch.allclose(project(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64), linear, 1.0, 1).alpha,
                          torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) - (4.0 / 9.0) * c)
    inside = project(torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64), linear, 1.0, 3)
    assert inside.multiplier == 0.0 and torch.equal(inside.alpha, torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64))


def test_a_batch_that_cannot_fit_is_refused_with_the_batch_that_would(monkeypatch):
    estimate = memory.estimate_memory(4, 2, 10, batch_size=8, graphs=2)
    monkeypatch.setattr(memory, "available_bytes", lambda device: estimate.total_bytes // 2)
    with pytest.raises(InsufficientMemoryError, match=r"batch_size=8 does not fit cpu: .* use batch_size=\d+ or less") \
            as refused:
        memory.check_memory(4, 2, 10, 8, 2, torch.device("cpu"))
    assert memory.check_memory(4, 2, 10, 2, 2, torch.device("cpu")).batch_size == 2
    # the batch it suggests is the largest that fits: it passes, one more is refused
    suggested = int(re.search(r"use batch_size=(\d+) or less", str(refused.value)).group(1))
    assert 1 <= suggested < 8
    assert memory.check_memory(4, 2, 10, suggested, 2, torch.device("cpu")).batch_size == suggested
    with pytest.raises(InsufficientMemoryError):
        memory.check_memory(4, 2, 10, suggested + 1, 2, torch.device("cpu"))


TINY = dict(dataset="digits", n_images=16, batch_size=4, epochs=3, warmup_epochs=1, channels=2, layers=2,
            pgd_steps=2, augment=True)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("algorithm, variant", [("rnas-os", "max"), ("rnas-fd", "L")])
def test_a_resumed_search_equals_an_uninterrupted_one_bit_for_bit(tmp_path, algorithm, variant):
    config = dict(TINY, algorithm=algorithm, variant=variant)
    whole = run_differentiable_search(dict(config, out_dir=str(tmp_path / "whole")), report=lambda line: None)

    def stop_after_epoch_2(line):
        if line.startswith("epoch 2/"):
            raise Interrupted
    with pytest.raises(Interrupted):
        run_differentiable_search(dict(config, out_dir=str(tmp_path / "cut")), report=stop_after_epoch_2)
    cut = run_differentiable_search(dict(config, out_dir=str(tmp_path / "cut")), resume=True,
                                    report=lambda line: None)

    a, b = (torch.load(folder / "checkpoint.pt", weights_only=False) for folder in (whole, cut))
    for key in ("model", "w_optimizer", "alpha_optimizer"):
        assert_equal_states(a[key], b[key])
    timing = ("epoch_s", "elapsed_s")
    assert [{k: v for k, v in row.items() if k not in timing} for row in a["history"]] == \
           [{k: v for k, v in row.items() if k not in timing} for row in b["history"]]
    genotype = Genotype.parse((cut / "genotype.txt").read_text())
    assert str(genotype) == a["history"][-1]["genotype"]


def assert_equal_states(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_equal_states(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_states(x, y)
    else:
        assert a == b


def test_resuming_with_other_settings_or_without_a_checkpoint_is_refused(tmp_path):
    config = dict(TINY, algorithm="rnas-os", variant="uniform", epochs=1, out_dir=str(tmp_path / "run"))
    with pytest.raises(SearchError, match="nothing to resume"):
        run_differentiable_search(config, resume=True, report=lambda line: None)
    run_differentiable_search(config, report=lambda line: None)
    with pytest.raises(SearchError, match="lambda was 1.0 in the interrupted run, now 0.5"):
        run_differentiable_search(dict(config, **{"lambda": 0.5}), resume=True, report=lambda line: None)
    with pytest.raises(SearchError, match="already holds a checkpoint"):
        run_differentiable_search(config, report=lambda line: None)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_shipped_presets_use_known_settings_and_the_paper_preset_is_the_default(algorithm):
    defaults = defaults_for(algorithm)
    stem = algorithm.replace("-", "_")
    for preset in ("quick", "paper"):
        settings = yaml.safe_load((CONFIGS / f"{stem}_{preset}.yaml").read_text())
        assert set(settings) <= set(defaults), set(settings) - set(defaults)
        assert settings["algorithm"] == algorithm
    paper = yaml.safe_load((CONFIGS / f"{stem}_paper.yaml").read_text())
    assert {k: v for k, v in paper.items()} == {k: defaults[k] for k in paper}


def test_unknown_settings_and_variants_are_refused():
    with pytest.raises(SearchError, match="unknown rnas-os setting"):
        run_differentiable_search(dict(algorithm="rnas-os", lamda=1.0))
    with pytest.raises(SearchError, match="variant must be one of H, L"):
        run_differentiable_search(dict(algorithm="rnas-fd", variant="max"))
    with pytest.raises(SearchError, match="unknown differentiable search"):
        run_differentiable_search(dict(algorithm="darts"))


def test_trnas_search_runs_a_differentiable_search_whose_genotype_trnas_train_reads(tmp_path):
    from trnas.cli import main
    from evaluation.architectures import resolve_architecture
    run = tmp_path / "rnas"
    assert main(["search", "--config", "rnas_os_quick", "variant=uniform", "epochs=1", "warmup_epochs=0",
                 "n_images=16", f"out_dir={run}"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    arch, genotype, name = resolve_architecture({"from_run": str(run), "pick": "best_rscore"})
    assert arch == "darts" and genotype == Genotype.parse(summary["genotype"])
    assert name.endswith("rnas") and not name.startswith("/")
    assert Genotype.parse((run / "genotype.txt").read_text()) == genotype
    # a differentiable search has a checkpoint, not an archive: the archive's flags do not apply
    assert main(["search", "--config", "rnas_os_quick", f"out_dir={run}", "--restart"]) == 2


def test_the_training_free_search_refuses_a_differentiable_algorithm_before_any_work(tmp_path):
    from trnas.config import UsageError
    from trnas.search import run_search
    with pytest.raises(UsageError, match="algorithm=rnas-os is a differentiable search"):
        run_search({"algorithm": "rnas-os", "out_dir": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()
