"""How a batch of architectures gets scored: in this process, or fanned out over Ray actors.

Both give identical results for the same jobs: each job carries its own seed (derived from the
search seed and the architecture), so neither order nor worker changes a score.
"""
from __future__ import annotations

import math
import time

from .registry import ProxyError

RAY_RESOURCE_UNITS = 10_000


def timed_measure(proxy, genotype, images, labels, seed):
    """(components, seconds, torch threads): the thread count where the scoring ran, because
    CPU kernels split their sums by thread and so move scores in their last digits."""
    import torch
    start = time.perf_counter()
    components = proxy.measure(genotype, images, labels, seed)
    return components, time.perf_counter() - start, torch.get_num_threads()


def ray_gpu_share(gpus_per_worker: float) -> float:
    """``gpus_per_worker`` floored to Ray's resolution (1/10000 of a GPU). Ray keeps only that
    precision; floored, W shares of 1/W fit on one GPU, where rounded, 7 shares of 0.1429 would
    not and the seventh actor would wait forever."""
    share = math.floor(float(gpus_per_worker) * RAY_RESOURCE_UNITS + 1e-6) / RAY_RESOURCE_UNITS
    if gpus_per_worker > 0 and share == 0:
        raise ProxyError(f"gpus_per_worker={gpus_per_worker:g} is below Ray's resolution of "
                         f"{1 / RAY_RESOURCE_UNITS:g} GPU")
    return share


class InProcessEvaluator:
    """Scores architectures one after another with a proxy and a fixed data batch."""

    def __init__(self, proxy, images, labels):
        self.proxy = proxy
        self.images = images
        self.labels = labels

    def __call__(self, jobs):
        """jobs: list of (genotype, seed) -> list of (components, seconds, threads), in job order."""
        return [timed_measure(self.proxy, genotype, self.images, self.labels, seed) for genotype, seed in jobs]

    def close(self):
        pass


class ProxyWorker:
    """A Ray actor: builds its proxy and receives the data batch once, then scores jobs."""

    def __init__(self, proxy_name, proxy_kwargs, batch, threads):
        import torch

        from .registry import get_proxy
        if threads:
            torch.set_num_threads(threads)
        self.proxy = get_proxy(proxy_name, **proxy_kwargs)
        self.images, self.labels = batch

    def measure(self, job):
        genotype, seed = job
        return timed_measure(self.proxy, genotype, self.images, self.labels, seed)


class RayEvaluator:
    """Scores architectures on ``workers`` Ray actors (a local cluster started on demand, or
    the cluster at ``ray_address``), balancing load with ``ray.util.ActorPool``.

    ``gpus_per_worker`` may be fractional (0.25 puts four actors on one GPU); the actors'
    proxies then run on the GPU Ray assigned them. With ``gpus_per_worker=0`` they run on
    the CPU: an actor that reserved no GPU must not open one Ray does not account for. Asking
    for more GPU than the cluster has is an error, not actors left pending forever."""

    def __init__(self, proxy_name, proxy_kwargs, images, labels, workers=2, ray_address=None,
                 gpus_per_worker=0.0, threads_per_worker=1):
        import ray
        from ray.util import ActorPool

        share = ray_gpu_share(gpus_per_worker)
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        available = ray.cluster_resources().get("GPU", 0.0)
        if workers * share > available + 1e-9:
            if self._started_ray:
                ray.shutdown()
            raise ProxyError(f"{workers} workers x gpus_per_worker={share:g} need "
                             f"{workers * share:g} GPUs, the Ray cluster has {available:g}")
        kwargs = dict(proxy_kwargs)
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, so "cuda" is the one it was given
        kwargs["device"] = "cuda" if share else "cpu"
        actor = ray.remote(num_cpus=1, num_gpus=share)(ProxyWorker)
        batch = ray.put((images.cpu(), labels.cpu()))
        self.actors = [actor.remote(proxy_name, kwargs, batch, threads_per_worker) for _ in range(workers)]
        self.pool = ActorPool(self.actors)

    def __call__(self, jobs):
        return list(self.pool.map(lambda worker, job: worker.measure.remote(job), jobs))

    def close(self):
        import ray
        for worker in self.actors:
            ray.kill(worker)
        if self._started_ray:
            ray.shutdown()
