import numpy as np
import pytest

from evaluation.registry import ProxyError
from helpers import score_in_process_and_on_workers
from nas_problem import RobustNASProblem


@pytest.fixture(scope="module")
def genotypes():
    rng = np.random.default_rng(11)
    from nas_problem import DartsSpace
    space = DartsSpace()
    return [space.decode(space.random_x(rng)) for _ in range(5)]


def test_two_ray_workers_score_exactly_as_in_process(genotypes, tmp_path):
    pytest.importorskip("ray")
    options = dict(dataset="digits", proxy="rscore", preset="reference", device="cpu", seed=3, n_calibration=0,
                   proxy_kwargs={"psi_inits": 4})
    expected, got = score_in_process_and_on_workers(genotypes, options, tmp_path / "archive.jsonl", workers=2)
    assert [r["key"] for r in got] == [r["key"] for r in expected]
    assert [r["components"] for r in got] == [r["components"] for r in expected]
    # each record names the torch thread count it was scored with (scores depend on it)
    assert {r["threads"] for r in got} == {1} == {r["threads"] for r in expected}
    # the archive keeps working with workers: everything is on disk and a rerun rescores nothing
    reread = RobustNASProblem(**options, archive=tmp_path / "archive.jsonl")
    reread.score_genotypes(genotypes)
    assert reread.n_scored == 0 and len(reread.archive) == len(genotypes)


def test_asking_for_more_gpu_than_the_cluster_has_fails_at_once_and_leaves_no_cluster():
    ray = pytest.importorskip("ray")
    with pytest.raises(ProxyError, match=r"need 1 GPUs, the Ray cluster has 0"):
        # this machine has no GPU: without the check the two actors would wait forever
        RobustNASProblem(dataset="digits", device="cpu", n_calibration=0, workers=2, gpus_per_worker=0.5)
    assert not ray.is_initialized()


def test_gpu_shares_are_floored_to_rays_resolution_so_w_shares_fit_one_gpu():
    from evaluation.evaluators import ray_gpu_share
    assert ray_gpu_share(0.125) == 0.125 and ray_gpu_share(0.1) == 0.1 and ray_gpu_share(0) == 0
    for workers in range(1, 17):
        share = ray_gpu_share(1 / workers)
        # Ray keeps 4 decimals: in its own units the shares must add up to at most one GPU
        assert workers * round(share * 10_000) <= 10_000 and share > 1 / workers - 1e-4
    with pytest.raises(ProxyError, match="below Ray's resolution"):
        ray_gpu_share(0.00004)
