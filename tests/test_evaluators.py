import numpy as np
import pytest

from evaluation.registry import ProxyError
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
    local = RobustNASProblem(**options)
    distributed = RobustNASProblem(**options, workers=2, archive=tmp_path / "archive.jsonl")
    try:
        expected = local.score_genotypes(genotypes)
        got = distributed.score_genotypes(genotypes)
    finally:
        distributed.close()
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
