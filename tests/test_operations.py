"""The DARTS operations compute what they are defined to, and their float32 gradients on this
machine's kernels agree with float64 ones: Φ and the zoo proxies take one gradient step, and a
wrong kernel (oneDNN's strided 1x1 weight gradient on an AVX2 AMD EPYC was one) would corrupt
their scores silently, or the process. The gradient check is a canary: it fails only on a
machine whose kernels are wrong, which is where it matters."""
import pytest
import torch
import torch.nn.functional as F

from nas_problem.operations import OPERATIONS, FactorizedReduce


def test_factorized_reduce_is_the_two_offset_strided_convolutions():
    torch.manual_seed(0)
    for size in (32, 16, 8):
        reduce = FactorizedReduce(6, 8, batchnorm=False).double()
        x = torch.randn(2, 6, size, size, dtype=torch.float64)
        relu = x.relu()
        expected = torch.cat([F.conv2d(relu, reduce.conv_1.weight, stride=2),
                              F.conv2d(relu[:, :, 1:, 1:], reduce.conv_2.weight, stride=2)], dim=1)
        assert torch.allclose(reduce(x), expected, rtol=1e-12, atol=1e-12)


def _module_cases():
    # the channel counts and map sizes of the `reference` (C = 3) and `paper` (C = 16) proxy networks
    for c, size in ((3, 32), (6, 32), (6, 16), (12, 16), (12, 8), (16, 32), (32, 32), (32, 16), (64, 16), (64, 8)):
        for name, make in OPERATIONS.items():
            if name != "none":
                for stride in (1, 2) if c % 2 == 0 else (1,):  # reduction cells have 2C channels
                    yield f"{name}-c{c}-s{stride}-{size}", (lambda make=make, c=c, stride=stride:
                                                            make(c, stride, False)), c, size
        # a skip in a reduction cell (c to c), the cell after it (2c or 4c to c)
        for c_in in (c, 2 * c, 4 * c) if c % 2 == 0 else ():
            yield f"factorized_reduce-{c_in}to{c}-{size}", (lambda c_in=c_in, c=c: FactorizedReduce(c_in, c, False)), \
                c_in, size


CASES = list(_module_cases())


@pytest.mark.parametrize("threads", [1, 2])
def test_float32_gradients_of_every_operation_agree_with_float64(threads):
    torch.set_num_threads(threads)  # the conftest fixture restores the count
    bad = []
    for name, make, c_in, size in CASES:
        torch.manual_seed(0)
        module = make()
        x = torch.randn(16, c_in, size, size)
        weights = torch.randn_like(module(x))
        results = {}
        # float32 channels-last as Φ runs on the CPU, then the same module converted in place to float64
        for dtype, layout in ((torch.float32, torch.channels_last), (torch.float64, torch.contiguous_format)):
            module.to(dtype)
            inputs = x.to(dtype).contiguous(memory_format=layout).requires_grad_(True)
            loss = (module(inputs) * weights.to(dtype)).sum()
            results[dtype] = torch.autograd.grad(loss, [inputs, *module.parameters()])
        for low, high in zip(results[torch.float32], results[torch.float64]):
            error = float((low.double() - high).abs().max() / high.abs().max().clamp_min(1e-12))
            if error > 1e-4:
                bad.append(f"{name}: relative error {error:.1e}")
    assert not bad, "; ".join(bad)
