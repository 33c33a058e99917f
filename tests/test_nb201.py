"""The NAS-Bench-201 space: string form, encoding, the space's search interface, the network; and
the search-space contract every registered space meets."""
import numpy as np
import pytest
import torch

from nas_problem import SPACES, GenotypeError, SearchSpace, get_space, space_of
from nas_problem.nb201 import (NB201_EDGES, NB201_OPS, NB201Cell, NB201Genotype, NB201Space, ResidualReduction,
                               build_nb201_network, nb201_flops, nb201_params)

TEXT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_string_round_trip_and_edge_order():
    g = NB201Genotype.parse(TEXT)
    assert str(g) == TEXT
    assert g.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert NB201_EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert NB201Genotype.parse(f"  {TEXT}\n") == g


@pytest.mark.parametrize("bad", ["", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|none~1|"])
def test_malformed_strings_are_genotype_errors(bad):
    with pytest.raises(GenotypeError):
        NB201Genotype.parse(bad)


def test_space_encodes_losslessly_and_draws_in_bounds():
    space = get_space("nb201")
    assert isinstance(space, NB201Space) and space.name == "nb201"
    assert space.n_var == 6 and space.n_blocks == 6
    assert space.xl.tolist() == [0] * 6 and space.xu.tolist() == [4] * 6
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = space.random_x(rng)
        assert space.is_valid(x) and np.all(x >= space.xl) and np.all(x <= space.xu)
        assert np.array_equal(space.encode(space.decode(x)), x)
        assert space.canonical_key(x) == str(space.decode(x))
    assert space.random_block(3, rng).shape == (1,)
    assert space.repair_block(0, np.array([7]), rng).tolist() == [4]
    with pytest.raises(ValueError):
        space.decode([0] * 5)
    with pytest.raises(ValueError):
        space.decode([5] * 6)
    # get_space passes include_none to every space; NB201 always has its five operations
    assert get_space("nb201", include_none=False).ops == NB201_OPS


def test_network_layout_and_parameter_count():
    g = NB201Genotype.parse(TEXT)
    net = build_nb201_network(g)
    cells = [m for m in net.cells if isinstance(m, NB201Cell)]
    assert len(cells) == 15 and sum(isinstance(m, ResidualReduction) for m in net.cells) == 2
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert nb201_params(g) == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)
    assert nb201_flops(g) > 0
    # a 3x3 conv edge has 16*16*9 weights and 2*16 BN parameters at C=16, and 4x, 16x that in later stages
    one_conv = NB201Genotype(("nor_conv_3x3",) + ("skip_connect",) * 5)
    none = NB201Genotype(("skip_connect",) * 6)
    per_stage = [c * c * 9 + 2 * c for c in (16, 32, 64)]
    assert (nb201_params(one_conv) - nb201_params(none)) * 1e6 == pytest.approx(5 * sum(per_stage))


def test_smallest_genotype_is_smallest():
    space = NB201Space()
    smallest = space.smallest_genotype()
    rng = np.random.default_rng(1)
    assert all(space.count_params(space.decode(space.random_x(rng))) >= space.count_params(smallest)
               for _ in range(5))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_registered_space_meets_the_contract_and_owns_its_genotypes(name):
    space = get_space(name)
    assert isinstance(space, SearchSpace)
    assert space.n_var == space.n_blocks * space.genes_per_block
    assert all(0 <= gene < space.genes_per_block for gene in space.op_genes)
    genotype = space.decode(space.random_x(np.random.default_rng(2)))
    assert space_of(genotype).name == name and space_of(genotype) is space_of(genotype)
    network = space.build_network(genotype)
    assert space.count_params(genotype) == pytest.approx(sum(p.numel() for p in network.parameters()) / 1e6)
    assert space.count_flops(genotype) > 0
    proxy_net = space.build_proxy_network(genotype, "reference")
    assert proxy_net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert 0 < len(space.cell_modules(proxy_net)) <= len(list(proxy_net.modules()))


def test_space_of_refuses_what_is_not_a_genotype():
    with pytest.raises(TypeError, match="not a genotype"):
        space_of("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
