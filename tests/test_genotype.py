import json

import numpy as np
import pytest
import torch

from nas_problem import DartsSpace, Genotype, GenotypeError, build_evaluation_network, count_flops, count_params
from nas_problem.genotype import load_genotypes

SPACE = DartsSpace()


def random_genotypes(n, seed=0, space=SPACE):
    rng = np.random.default_rng(seed)
    return [space.decode(space.random_x(rng)) for _ in range(n)]


def test_random_genotypes_round_trip_through_vector_text_and_json():
    for genotype in random_genotypes(200):
        assert genotype.is_valid()
        assert SPACE.decode(SPACE.encode(genotype)) == genotype
        assert Genotype.parse(str(genotype)) == genotype
        assert Genotype.from_json(json.loads(json.dumps(genotype.to_json()))) == genotype
        assert Genotype.parse(json.dumps(genotype.to_json())) == genotype


def test_vector_round_trips_and_stays_in_bounds():
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = SPACE.random_x(rng)
        assert np.all(x >= SPACE.xl) and np.all(x <= SPACE.xu)
        assert np.array_equal(SPACE.encode(SPACE.decode(x)), x)


def test_bounds_follow_the_node_inputs_and_operation_count():
    assert SPACE.n_var == 32
    assert SPACE.xu[:16].tolist() == [1, 6, 1, 6, 2, 6, 2, 6, 3, 6, 3, 6, 4, 6, 4, 6]
    assert DartsSpace(include_none=True).xu[1] == 7


def test_all_benchmark_and_published_genotypes_round_trip(shared_data):
    genotypes = dict(load_genotypes(shared_data / "published_genotypes.json"))
    for path in sorted((shared_data / "tiny_robustbench").glob("*.json")):
        genotypes.update({f"{path.stem}/{k}": g for k, g in load_genotypes(path).items()})
    assert len(genotypes) == 9 + 110
    with_none = DartsSpace(include_none=True)
    for name, genotype in genotypes.items():
        space = with_none if genotype.uses("none") else SPACE
        assert space.decode(space.encode(genotype)) == genotype, name
        assert Genotype.parse(str(genotype)) == genotype, name
    assert genotypes["LRNAS"].uses("none")


def test_benchmark_record_json_layout_is_read(shared_data):
    record = json.loads((shared_data / "tiny_robustbench" / "robust_bench_seed_0_1000.json").read_text())[0]
    genotype = Genotype.from_json(record)
    assert genotype.normal[0] == ("sep_conv_3x3", 0)
    assert genotype.reduce_concat == (2, 3, 4, 5)


def test_darts_text_with_range_concat_parses():
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
    genotype = Genotype.parse(text)
    assert genotype.normal[7] == ("dil_conv_3x3", 2)
    assert genotype.normal_concat == (2, 3, 4, 5)


def cell_text(op="sep_conv_3x3", first_input=0):
    pairs = [(op, first_input)] + [("sep_conv_3x3", 0)] * 7
    return repr(pairs)


@pytest.mark.parametrize("text, message", [
    ("Genotype(normal=[1, 2], reduce=[1, 2])", "pairs"),
    ("Genotype(normal=[('sep_conv_3x3', 0)])", "lacks reduce"),
    ("not a genotype", "malformed"),
    (f"Genotype(normal={cell_text()}, reduce={cell_text('warp_drive')})", "unknown operation"),
    (f"Genotype(normal={cell_text(first_input=3)}, reduce={cell_text()})", "may only read"),
    ("{\"normal\": []", "malformed genotype JSON"),
])
def test_malformed_genotypes_raise_precise_errors(text, message):
    with pytest.raises(GenotypeError, match=message):
        Genotype.parse(text)


def test_canonical_form_ignores_the_order_of_a_nodes_two_edges():
    genotype = random_genotypes(1, seed=3)[0]
    swapped_normal = list(genotype.normal)
    swapped_normal[0], swapped_normal[1] = swapped_normal[1], swapped_normal[0]
    swapped = Genotype(normal=swapped_normal, reduce=genotype.reduce)
    assert swapped.key() == genotype.key()
    assert swapped.canonical() == genotype.canonical()
    other = random_genotypes(1, seed=4)[0]
    assert other.key() != genotype.key()


def test_validity_requires_distinct_inputs_per_node():
    genotype = random_genotypes(1, seed=5)[0]
    x = SPACE.encode(genotype)
    x[2] = x[0]
    assert not SPACE.is_valid(x)
    assert not SPACE.decode(x).is_valid()
    repaired = SPACE.repair_block(0, x[:4], np.random.default_rng(0))
    assert repaired[0] != repaired[2]


def test_parameter_and_flop_counts_agree_with_the_whole_network():
    from torch.utils.flop_counter import FlopCounterMode
    for genotype in random_genotypes(3, seed=7):
        with torch.device("meta"):
            network = build_evaluation_network(genotype)
        with FlopCounterMode(display=False) as counter:
            network(torch.empty(1, 3, 32, 32, device="meta"))
        assert count_params(genotype) == pytest.approx(sum(p.numel() for p in network.parameters()) / 1e6, abs=1e-9)
        assert count_flops(genotype) == pytest.approx(counter.get_total_flops() / 2e6, abs=1e-9)


def test_published_parameter_counts(shared_data):
    genotypes = load_genotypes(shared_data / "published_genotypes.json")
    # DARTS (V2) is published at 3.3 M and AdvRush at 4.2 M parameters on CIFAR-10
    assert count_params(genotypes["DARTS_V2"]) == pytest.approx(3.3, abs=0.06)
    assert count_params(genotypes["ADVRUSH"]) == pytest.approx(4.2, abs=0.06)


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
@pytest.mark.parametrize("preset", ["reference", "paper"])
def test_replicated_network_is_its_copies_side_by_side(space_name, preset):
    """Copy r of a `replicas=R` network, given the R parameter sets stacked copy-major, computes
    exactly what the ordinary network computes with parameter set r (float64: no rounding
    noise between grouped and plain convolutions)."""
    from nas_problem import get_space
    space = get_space(space_name)
    genotype = random_genotypes(1, seed=4, space=space)[0]
    replicas = 3
    single = space.build_proxy_network(genotype, preset).double().train()
    copies = space.build_proxy_network(genotype, preset, replicas=replicas).double().train()
    generator = torch.Generator().manual_seed(0)
    stacked = {name: torch.randn(replicas, *p.shape, generator=generator, dtype=torch.float64)
               for name, p in single.named_parameters()}
    assert [n for n, _ in copies.named_parameters()] == list(stacked)
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        together = torch.func.functional_call(
            copies, {n: p.reshape(copies.get_parameter(n).shape) for n, p in stacked.items()}, (x,))
        assert together.shape == (4, replicas, 10)
        for r in range(replicas):
            alone = torch.func.functional_call(single, {n: p[r] for n, p in stacked.items()}, (x,))
            torch.testing.assert_close(together[:, r], alone, rtol=1e-9, atol=1e-9)


def test_channel_concat_keeps_each_copy_together():
    from nas_problem.operations import channel_concat
    a = torch.arange(2 * 4 * 1 * 1.0).view(1, 8, 1, 1)         # 2 copies of 4 channels
    b = 100 + torch.arange(2 * 2 * 1 * 1.0).view(1, 4, 1, 1)   # 2 copies of 2 channels
    joined = channel_concat([a, b], replicas=2).flatten().tolist()
    assert joined == [0, 1, 2, 3, 100, 101, 4, 5, 6, 7, 102, 103]
    assert torch.equal(channel_concat([a, b]), torch.cat([a, b], dim=1))


def test_replicas_are_checked():
    genotype = random_genotypes(1)[0]
    with pytest.raises(ValueError, match="replicas"):
        build_evaluation_network(genotype, channels=4, layers=5, auxiliary=True, replicas=2)
    with pytest.raises(ValueError, match="replicas"):
        build_evaluation_network(genotype, channels=4, layers=5, replicas=0)


def test_networks_run_forward_for_every_preset():
    from nas_problem import build_proxy_network
    genotype = random_genotypes(1, seed=9)[0]
    x = torch.rand(2, 3, 32, 32)
    for preset in ("reference", "paper"):
        assert build_proxy_network(genotype, preset)(x).shape == (2, 10)
    reference = build_proxy_network(genotype, "reference")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules())
    small = build_evaluation_network(genotype, channels=4, layers=5, auxiliary=True, num_classes=7)
    small.train()
    assert small(x).shape == (2, 7) and small.aux_logits.shape == (2, 7)
