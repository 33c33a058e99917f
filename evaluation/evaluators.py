"""How a batch of architectures gets scored: in this process, or fanned out over Ray actors.

Both give identical results for the same jobs: each job carries its own seed (derived from the
search seed and the architecture), so neither order nor worker changes a score (CPU kernels sum
in an order that depends on their thread count, which every record notes). Both hand each
result back as soon as it is ready, so the caller can archive it before the next one finishes.
"""
from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from .registry import ProxyError

RAY_RESOURCE_UNITS = 10_000


def _drop_ray_token_notice(record) -> bool:
    # Ray 2.60 announces on stderr that a local cluster it starts uses token authentication, its
    # secure default; on a search's progress output that line reads like a problem to act on
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def quiet_ray_token_notice():
    """Drop Ray's notice that token authentication is on (the warning that it is off stays)."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if _drop_ray_token_notice not in logger.filters:
        logger.addFilter(_drop_ray_token_notice)


class WorkerError(RuntimeError):
    """A Ray worker died while it scored an architecture, or could not start its proxy: the
    evaluator is a worker short from then on."""


def timed_measure(proxy, genotype, images, labels, seed):
    """(components, seconds, torch threads, device): where the scoring ran, because CPU kernels
    split their sums by thread and devices round differently, so both move scores in their last
    digits. The device is the proxy's (a Ray worker's may differ from the search's), or None."""
    import torch
    start = time.perf_counter()
    components = proxy.measure(genotype, images, labels, seed)
    device = getattr(proxy, "device", None)
    return components, time.perf_counter() - start, torch.get_num_threads(), None if device is None else str(device)


def _threads(count: int) -> str:
    return f"{count} torch thread{'s' if count != 1 else ''}"


def ray_gpu_share(gpus_per_worker: float) -> float:
    """``gpus_per_worker`` floored to Ray's resolution (1/10000 of a GPU). Ray keeps only that
    precision; floored, W shares of 1/W fit on one GPU, where rounded, 7 shares of 0.1429 would
    not and the seventh actor would wait forever."""
    share = math.floor(float(gpus_per_worker) * RAY_RESOURCE_UNITS + 1e-6) / RAY_RESOURCE_UNITS
    if gpus_per_worker > 0 and share == 0:
        raise ProxyError(f"gpus_per_worker={gpus_per_worker:g} is below Ray's resolution of "
                         f"{1 / RAY_RESOURCE_UNITS:g} GPU")
    return share


def requested_gpu_share(gpus_per_worker) -> float | None:
    """``gpus_per_worker`` as given by a user: None for ``auto`` (or None), else a number in
    [0, 1] (a worker's proxy uses one GPU); anything else is a :class:`ProxyError`."""
    if gpus_per_worker is None or (isinstance(gpus_per_worker, str) and gpus_per_worker.lower() == "auto"):
        return None
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, (int, float)):
        raise ProxyError(f"gpus_per_worker must be a number or auto, got {gpus_per_worker!r}")
    if not (math.isfinite(gpus_per_worker) and gpus_per_worker >= 0):
        raise ProxyError(f"gpus_per_worker must be auto or a number in [0, 1] (finite and >= 0), "
                         f"got {gpus_per_worker!r}")
    if gpus_per_worker > 1:
        raise ProxyError(f"gpus_per_worker must be auto or a number in [0, 1] (a worker's proxy uses one GPU, "
                         f"at most 1), got {gpus_per_worker!r}")
    return float(gpus_per_worker)


def ignores_device_index(device, gpus_per_worker) -> bool:
    """Whether Ray workers on GPUs would ignore the GPU index ``device`` names (Ray gives each
    its GPU): any index but that of the only GPU, unless ``gpus_per_worker=0`` keeps them on
    the CPU. ``auto`` and malformed devices name no index (the proxy reports the latter)."""
    import torch
    if requested_gpu_share(gpus_per_worker) == 0 or device is None or str(device).lower() == "auto":
        return False
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        return False
    if device.type != "cuda" or device.index is None:
        return False
    return not (device.index == 0 and torch.cuda.device_count() <= 1)


def worker_gpu_share(gpus_per_worker, device_type: str, cluster_gpus: float, workers: int) -> float:
    """The GPU share each of ``workers`` actors reserves on a Ray cluster with ``cluster_gpus``.

    ``None`` or ``"auto"``: a proxy meant for the CPU takes none; one meant for a GPU shares the
    cluster's whole GPUs evenly, at most one each (1 GPU, 4 workers: 0.25; 2 GPUs, 3 workers:
    0.5, since a fraction must fit on one GPU). An explicit share must fit the same way: Ray
    packs fractions GPU by GPU, so 3 workers x 0.6 on 2 GPUs would leave the third one waiting
    forever although 1.8 < 2."""
    whole_gpus = math.floor(cluster_gpus + 1e-9)
    requested = requested_gpu_share(gpus_per_worker)
    if requested is None:
        if device_type != "cuda":
            return 0.0
        if whole_gpus < 1:
            raise ProxyError(f"the proxy runs on cuda, but the Ray cluster has {cluster_gpus:g} GPUs "
                             f"(set gpus_per_worker=0 to score on its CPUs)")
        requested = 1.0 / math.ceil(workers / whole_gpus)
    share = ray_gpu_share(requested)
    if share == 0:
        return 0.0
    capacity = whole_gpus * math.floor(1 / share + 1e-6)
    if capacity < workers:
        raise ProxyError(f"{workers} workers x gpus_per_worker={share:g} do not fit the Ray cluster's "
                         f"{cluster_gpus:g} GPUs ({capacity} would)")
    return share


class InProcessEvaluator:
    """Scores architectures in this process with a proxy and a fixed data batch.

    On the CPU, a proxy whose ``measure`` may run in several threads at once
    (``Proxy.thread_safe``: the R-Score) scores ``in_flight`` architectures at a time (default:
    torch's thread count), each on its own thread with one torch thread. Two architectures side
    by side on two cores go faster than one on two cores: most of a small network's time is
    spent in short kernels, which intra-op threads barely split. Every architecture then runs
    on one torch thread, so its numbers do not depend on how many threads the search has, and
    equal a one-thread Ray worker's. Any other proxy, a GPU, or ``in_flight=1`` scores one
    architecture after another on the calling thread, with its torch threads."""

    def __init__(self, proxy, images, labels, in_flight: int | None = None):
        if in_flight is not None and (isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1):
            raise ProxyError(f"in_flight must be a positive integer or None, got {in_flight!r}")
        self.proxy = proxy
        self.images = images
        self.labels = labels
        self.in_flight = in_flight

    def concurrency(self) -> int:
        """How many architectures a call scores at once (1: one after another, in the caller)."""
        import torch
        device = getattr(self.proxy, "device", None)
        if not getattr(self.proxy, "thread_safe", False) or device is None or torch.device(device).type != "cpu":
            return 1
        return self.in_flight or torch.get_num_threads()

    def __call__(self, jobs):
        """jobs: list of (genotype, seed) -> yields (position in jobs, (components, seconds, threads,
        device)) as each architecture is scored: in job order one at a time, else in the order
        they finish."""
        concurrency = self.concurrency()
        if concurrency == 1:
            for position, (genotype, seed) in enumerate(jobs):
                yield position, timed_measure(self.proxy, genotype, self.images, self.labels, seed)
            return
        yield from self._in_flight(jobs, concurrency)

    def _in_flight(self, jobs, concurrency):
        import torch

        # torch.set_num_threads sets the calling thread's count and the default every thread
        # takes up on its first parallel work. Asking first fixes the caller's own count; the
        # scoring threads then set theirs (and the default) to 1, and the default is put back
        # afterwards for threads started later.
        caller_threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="trnas-scoring",
                                  initializer=torch.set_num_threads, initargs=(1,))
        try:
            futures = {pool.submit(timed_measure, self.proxy, genotype, self.images, self.labels, seed): position
                       for position, (genotype, seed) in enumerate(jobs)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # an interrupted call (Ctrl-C included) drops the jobs not started and waits for
            # those running: at most one architecture per thread
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(caller_threads)

    def describe(self) -> str:
        import torch
        concurrency = self.concurrency()
        if concurrency == 1:
            return f"in-process, {_threads(torch.get_num_threads())}"
        return f"in-process, {concurrency} architectures at once, {_threads(1)} each"

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

    def measure(self, position, job):
        genotype, seed = job
        return position, timed_measure(self.proxy, genotype, self.images, self.labels, seed)


class RayEvaluator:
    """Scores architectures on ``workers`` Ray actors (a local cluster started on demand, or
    the cluster at ``ray_address``), balancing load with ``ray.util.ActorPool``.

    ``gpus_per_worker`` (:func:`worker_gpu_share`; default: the cluster's GPUs shared evenly
    when ``proxy_kwargs["device"]`` is cuda, none otherwise) may be fractional: 0.25 puts four
    actors on one GPU, and their proxies run on the GPU Ray assigned them. With a share of 0
    they run on the CPU: an actor that reserved no GPU must not open one Ray does not account
    for. A share that the cluster's GPUs cannot hold is an error, not actors left pending forever
    (Ray reports the GPUs a cluster has, not those free: on a cluster other jobs share, actors
    can still wait for a GPU to come free)."""

    def __init__(self, proxy_name, proxy_kwargs, images, labels, workers=2, ray_address=None,
                 gpus_per_worker=None, threads_per_worker=1):
        import ray

        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            quiet_ray_token_notice()
            ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        try:
            share = worker_gpu_share(gpus_per_worker, str(proxy_kwargs.get("device", "cpu")).split(":")[0],
                                     ray.cluster_resources().get("GPU", 0.0), workers)
        except ProxyError:
            if self._started_ray:
                ray.shutdown()
            raise
        self.workers, self.gpus_per_worker, self.threads_per_worker = workers, share, threads_per_worker
        kwargs = dict(proxy_kwargs)
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, so "cuda" is the one it was given
        kwargs["device"] = "cuda" if share else "cpu"
        actor = ray.remote(num_cpus=1, num_gpus=share)(ProxyWorker)
        batch = ray.put((images.cpu(), labels.cpu()))
        self.actors = [actor.remote(proxy_name, kwargs, batch, threads_per_worker) for _ in range(workers)]
        self.lost = None

    def __call__(self, jobs):
        """As :meth:`InProcessEvaluator.__call__`, in the order the workers finish. A worker whose
        process died (a crash, the out-of-memory killer) or that could not start is a
        :class:`WorkerError`, and so is every later call: the pool is one worker short."""
        from ray.exceptions import RayActorError
        from ray.util import ActorPool
        if self.lost:
            raise WorkerError(self.lost)
        # a pool per call: jobs a caller abandoned (an interrupt, an error) are not waited for
        # or handed back by the next call; the actors finish them and the results are dropped
        pool = ActorPool(self.actors)
        try:
            yield from pool.map_unordered(lambda worker, item: worker.measure.remote(*item), list(enumerate(jobs)))
        except RayActorError as error:
            lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
            if error.actor_init_failed:  # the traceback of the worker's __init__ ends with its exception
                self.lost = f"a Ray worker could not start: {lines[-1].strip()}"
            else:
                self.lost = (f"a Ray worker died while scoring ({lines[0].strip()}): its process crashed or was "
                             f"killed, e.g. for lack of memory")
            raise WorkerError(self.lost) from error

    def describe(self) -> str:
        where = f"{self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else "on the CPU"
        return f"{self.workers} Ray workers, {where}, {_threads(self.threads_per_worker or 1)} each"

    def close(self):
        import ray
        for worker in self.actors:
            ray.kill(worker)
        if self._started_ray:
            ray.shutdown()
