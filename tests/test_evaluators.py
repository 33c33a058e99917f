import json

import numpy as np
import pytest

from evaluation import make_scorer
from evaluation.registry import ProxyError
from helpers import score_in_process_and_on_workers
from nas_problem import Genotype
from trnas import make_problem


# a cheap R-Score (4 Ψ initialisations) that every worker test scores with
RSCORE_ON_THE_CPU = dict(dataset="digits", proxy="rscore", preset="reference", device="cpu", seed=3, n_calibration=0,
                         proxy_kwargs={"psi_inits": 4})


@pytest.fixture(scope="module")
def genotypes():
    rng = np.random.default_rng(11)
    from nas_problem import DartsSpace
    space = DartsSpace()
    return [space.decode(space.random_x(rng)) for _ in range(5)]


def test_two_ray_workers_score_exactly_as_in_process(genotypes, tmp_path):
    pytest.importorskip("ray")
    expected, got = score_in_process_and_on_workers(genotypes, RSCORE_ON_THE_CPU, tmp_path / "archive.jsonl", workers=2)
    assert [r["key"] for r in got] == [r["key"] for r in expected]
    assert [r["components"] for r in got] == [r["components"] for r in expected]
    # each record names the torch thread count it was scored with (scores depend on it)
    assert {r["threads"] for r in got} == {1} == {r["threads"] for r in expected}
    assert {r["device"] for r in got} == {"cpu"} == {r["device"] for r in expected}
    # the archive keeps working with workers: everything is on disk and a rerun rescores nothing
    reread = make_problem(**RSCORE_ON_THE_CPU, archive=tmp_path / "archive.jsonl")
    reread.score_genotypes(genotypes)
    assert reread.n_scored == 0 and len(reread.archive) == len(genotypes)


def test_rays_notice_that_token_authentication_is_on_is_dropped_and_its_warning_that_it_is_off_kept():
    import logging
    pytest.importorskip("ray")
    from ray._private.authentication import authentication_token_setup as token_setup

    from evaluation.evaluators import quiet_ray_token_notice
    quiet_ray_token_notice()
    quiet_ray_token_notice()  # a second evaluator adds no second filter
    logger = logging.getLogger(token_setup.__name__)
    assert len(logger.filters) == 1
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)  # Ray's own loggers do not propagate to the root
    try:
        token_setup._warn_token_auth_enabled()
        token_setup._warn_token_auth_disabled()
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and seen[0].startswith("Token authentication is disabled")


def test_asking_for_more_gpu_than_the_cluster_has_fails_at_once_and_leaves_no_cluster():
    ray = pytest.importorskip("ray")
    with pytest.raises(ProxyError, match=r"2 workers x gpus_per_worker=0.5 do not fit the Ray cluster's 0 GPUs"):
        # this machine has no GPU: without the check the two actors would wait forever
        make_scorer(dataset="digits", device="cpu", workers=2, gpus_per_worker=0.5)
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


def test_worker_gpu_share_defaults_to_the_clusters_gpus_shared_evenly():
    from evaluation.evaluators import worker_gpu_share
    # a CPU proxy reserves no GPU, whatever the cluster has
    assert worker_gpu_share(None, "cpu", 8, 4) == 0 == worker_gpu_share("auto", "cpu", 0, 2)
    assert worker_gpu_share("auto", "cuda", 1, 4) == 0.25
    assert worker_gpu_share(None, "cuda", 1, 3) == 0.3333
    assert worker_gpu_share(None, "cuda", 8, 4) == 1.0
    # a fraction must fit on one GPU: 3 workers on 2 GPUs take half a GPU each, not 2/3
    assert worker_gpu_share(None, "cuda", 2, 3) == 0.5
    assert worker_gpu_share(None, "cuda", 2.5, 5) == 0.3333
    with pytest.raises(ProxyError, match="the Ray cluster has 0 GPUs"):
        worker_gpu_share(None, "cuda", 0, 2)


@pytest.mark.parametrize("share, gpus, workers", [(0.5, 2, 4), (0.25, 1, 4), (1, 3, 3), (0, 0, 8)])
def test_an_explicit_share_that_fits_is_kept(share, gpus, workers):
    from evaluation.evaluators import worker_gpu_share
    assert worker_gpu_share(share, "cuda", gpus, workers) == share


@pytest.mark.parametrize("share, gpus, workers, message", [
    # 1.8 GPUs in all, yet Ray packs fractions GPU by GPU: the third 0.6 fits neither
    (0.6, 2, 3, "do not fit the Ray cluster's 2 GPUs .2 would"),
    (0.5, 1, 3, "do not fit"),
    (2, 4, 2, "at most 1"),
    (-0.5, 1, 1, "finite and >= 0"),
    ("half", 1, 1, "a number or auto"),
    (True, 1, 1, "a number or auto"),
])
def test_a_share_the_cluster_cannot_hold_is_refused(share, gpus, workers, message):
    from evaluation.evaluators import worker_gpu_share
    with pytest.raises(ProxyError, match=message):
        worker_gpu_share(share, "cuda", gpus, workers)


def test_a_device_index_with_workers_is_refused_before_anything_starts():
    ray = pytest.importorskip("ray")
    with pytest.raises(ProxyError, match="Ray gives each worker its GPU"):
        make_scorer(dataset="digits", device="cuda:1", workers=2)
    assert not ray.is_initialized()


def test_a_device_index_is_fine_where_workers_do_not_need_to_honour_it():
    import torch

    from evaluation.evaluators import ignores_device_index
    assert ignores_device_index("cuda:1", None) and ignores_device_index(torch.device("cuda", 1), 0.5)
    # workers kept on the CPU, no index, or not a GPU
    assert not any(ignores_device_index(device, share) for device, share in
                   [("cuda:1", 0), ("cuda", None), ("auto", None), ("cpu", None), (None, 0.25)])
    # cuda:0 is the only GPU there is unless torch sees several
    assert ignores_device_index("cuda:0", None) == (torch.cuda.device_count() > 1)


def test_workers_on_a_cluster_already_running_leave_it_running(genotypes, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        expected, got = score_in_process_and_on_workers(genotypes[:2], RSCORE_ON_THE_CPU, tmp_path / "archive.jsonl",
                                                        workers=2)
        # the problem used the cluster it found and, closing, stopped its actors but not the cluster
        assert ray.is_initialized()
        assert [r["components"] for r in got] == [r["components"] for r in expected]
    finally:
        ray.shutdown()


def test_a_worker_that_dies_is_one_clear_error_and_what_was_scored_stays_archived(genotypes, tmp_path):
    ray = pytest.importorskip("ray")
    from evaluation.evaluators import WorkerError
    problem = make_problem(**RSCORE_ON_THE_CPU, workers=2, archive=tmp_path / "archive.jsonl")
    add = problem.archive.add

    def add_then_kill_a_worker(records):
        add(records)
        if len(problem.archive) == 1:  # both workers still hold jobs: one dies mid-architecture
            ray.kill(problem.scorer.evaluator.actors[0])

    problem.archive.add = add_then_kill_a_worker
    try:
        with pytest.raises(WorkerError, match="a Ray worker died while scoring"):
            problem.score_genotypes(genotypes)
        # the pool is one worker short from now on: said again, not a hang or a half-scored batch
        with pytest.raises(WorkerError, match="a Ray worker died while scoring"):
            problem.score_genotypes(genotypes)
    finally:
        problem.close()
    # what came back before the worker died is on disk and equals the in-process score
    archived = make_problem(**RSCORE_ON_THE_CPU, archive=tmp_path / "archive.jsonl").archive.records
    assert 1 <= len(archived) < len(genotypes)
    by_key = {g.key(): g for g in genotypes}
    local = make_problem(**RSCORE_ON_THE_CPU).score_genotypes([by_key[r["key"]] for r in archived])
    assert [r["components"] for r in archived] == [r["components"] for r in local]


def test_results_that_come_back_out_of_order_are_archived_under_their_own_architecture(genotypes, tmp_path):
    pytest.importorskip("ray")
    # the slowest architecture first (separable 5x5 convolutions everywhere), then pools: the
    # second worker returns the cheap ones while the first is still busy
    heavy = Genotype.parse(json.dumps({"normal": [["sep_conv_5x5", 0], ["sep_conv_5x5", 1]] * 4,
                                       "reduce": [["sep_conv_5x5", 0], ["sep_conv_5x5", 1]] * 4}))
    light = [Genotype.parse(json.dumps({"normal": [[op, 0], [op, 1]] * 4, "reduce": [[op, 0], [op, 1]] * 4}))
             for op in ("max_pool_3x3", "avg_pool_3x3", "skip_connect")]
    problem = make_problem(**RSCORE_ON_THE_CPU, workers=2, archive=tmp_path / "archive.jsonl")
    try:
        problem.score_genotypes(genotypes[:2])  # both workers up and warm
        got = problem.score_genotypes([heavy, *light])
    finally:
        problem.close()
    finished = [json.loads(line)["key"] for line in (tmp_path / "archive.jsonl").read_text().splitlines()][2:]
    assert finished != [g.key() for g in [heavy, *light]], "the results came back in job order"
    expected = make_problem(**RSCORE_ON_THE_CPU).score_genotypes([heavy, *light])
    assert [r["key"] for r in got] == [r["key"] for r in expected]
    assert [r["components"] for r in got] == [r["components"] for r in expected]


def test_a_search_with_two_threads_scores_two_architectures_at_once_exactly_as_one_thread_does(genotypes):
    import torch
    torch.set_num_threads(2)  # conftest's fixture restores one thread afterwards
    problem = make_problem(**RSCORE_ON_THE_CPU)
    assert problem.scorer.describe() == "in-process, 2 architectures at once, 1 torch thread each"
    got = problem.score_genotypes(genotypes)
    assert torch.get_num_threads() == 2, "the caller's thread count changed"
    torch.set_num_threads(1)
    problem = make_problem(**RSCORE_ON_THE_CPU)
    assert problem.scorer.describe() == "in-process, 1 torch thread"
    expected = problem.score_genotypes(genotypes)
    assert [r["key"] for r in got] == [r["key"] for r in expected]
    # each architecture ran on one torch thread, so the thread count of the search moves nothing
    assert [r["components"] for r in got] == [r["components"] for r in expected]
    assert {r["threads"] for r in got} == {1}


class SlowProxy:
    """A stand-in proxy: sleeps, records which thread scored each seed, and fails on ``fail_on``."""

    def __init__(self, thread_safe=True, device="cpu", fail_on=None, seconds=0.05, meet=None):
        import threading
        self.thread_safe, self.device, self.fail_on, self.seconds = thread_safe, device, fail_on, seconds
        self.started = {}
        self.lock = threading.Lock()
        # the first ``meet`` architectures wait for each other: they must be scored at the same time
        self.meeting = threading.Barrier(meet, timeout=10) if meet else None

    def measure(self, genotype, images, labels, seed):
        import threading
        import time
        with self.lock:
            self.started[seed] = threading.current_thread().name
        if self.meeting is not None and seed < self.meeting.parties:
            self.meeting.wait()
        time.sleep(self.seconds)
        if seed == self.fail_on:
            raise ArithmeticError(f"architecture {seed} failed")
        return {"seed": seed}


def test_several_architectures_at_once_come_back_each_under_its_own_position():
    from evaluation.evaluators import InProcessEvaluator
    proxy = SlowProxy(meet=3)  # a barrier of three: fewer at once would break it
    evaluator = InProcessEvaluator(proxy, None, None, in_flight=3)
    results = dict(evaluator([("genotype", seed) for seed in range(12)]))
    assert sorted(results) == list(range(12))
    assert all(results[position][0] == {"seed": position} for position in results)
    assert all(results[position][2] == 1 for position in results)  # one torch thread each
    threads = set(proxy.started.values())
    assert len(threads) == 3 and all(name.startswith("trnas-scoring") for name in threads)


def test_scoring_threads_leave_the_callers_thread_count_and_that_of_threads_started_later():
    import threading

    import torch

    from evaluation.evaluators import InProcessEvaluator
    torch.set_num_threads(2)  # conftest's fixture restores one thread afterwards
    dict(InProcessEvaluator(SlowProxy(), None, None, in_flight=2)([("genotype", seed) for seed in range(4)]))
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert torch.get_num_threads() == 2 and later == [2]


def test_a_proxy_not_made_for_threads_or_a_gpu_or_in_flight_1_scores_one_at_a_time_in_the_caller():
    import threading

    from evaluation.evaluators import InProcessEvaluator
    for proxy, in_flight in ((SlowProxy(thread_safe=False), 3), (SlowProxy(device="cuda"), 3), (SlowProxy(), 1)):
        evaluator = InProcessEvaluator(proxy, None, None, in_flight=in_flight)
        assert evaluator.concurrency() == 1
        assert [position for position, _ in evaluator([("genotype", seed) for seed in range(4)])] == [0, 1, 2, 3]
        assert set(proxy.started.values()) == {threading.current_thread().name}


def test_an_error_while_several_architectures_are_in_flight_reaches_the_caller_and_stops_the_rest():
    import threading

    from evaluation.evaluators import InProcessEvaluator
    # jobs of 0.2 s: the four that start before the error cannot become ten unless the caller
    # stalls for a second
    proxy = SlowProxy(fail_on=1, seconds=0.2)
    evaluator = InProcessEvaluator(proxy, None, None, in_flight=2)
    with pytest.raises(ArithmeticError, match="architecture 1 failed"):
        dict(evaluator([("genotype", seed) for seed in range(40)]))
    # the jobs not started were dropped, and no scoring thread outlives the call
    assert len(proxy.started) < 10
    assert not [t for t in threading.enumerate() if t.name.startswith("trnas-scoring")]
    # an interrupted call (a generator closed early) stops the same way
    proxy = SlowProxy(seconds=0.2)
    scoring = InProcessEvaluator(proxy, None, None, in_flight=2)([("genotype", seed) for seed in range(40)])
    next(scoring)
    scoring.close()
    assert len(proxy.started) < 10
    assert not [t for t in threading.enumerate() if t.name.startswith("trnas-scoring")]


@pytest.mark.parametrize("in_flight", [0, -1, 1.5, True, "2"])
def test_in_flight_must_be_a_positive_integer(in_flight):
    from evaluation.evaluators import InProcessEvaluator
    with pytest.raises(ProxyError, match="in_flight must be a positive integer"):
        InProcessEvaluator(SlowProxy(), None, None, in_flight=in_flight)
