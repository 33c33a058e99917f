"""What scores a search's architectures: the proxy, the data batch it scores and the evaluator
that runs it, built in one call for ``nas_problem.RobustNASProblem`` (which receives it, so the
search side needs nothing from this package)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .datasets import Dataset, load_dataset, proxy_batch
from .evaluators import InProcessEvaluator, RayEvaluator, ignores_device_index
from .registry import Proxy, ProxyError, get_proxy
from .runtime import resolve_device


@dataclass
class ProxyScorer:
    """A proxy and the evaluator that runs it on a fixed batch of ``dataset``
    (``nas_problem.Scorer`` is what the problem asks of it)."""

    proxy: Proxy
    evaluator: InProcessEvaluator | RayEvaluator
    dataset: Dataset
    device: torch.device
    batch_seed: int | None = None

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def identity(self) -> dict:
        """What besides the search seed and space decides a score: archived scores are reused
        only by a scorer of the same identity."""
        return {"proxy": self.proxy.name, "revision": self.proxy.revision, "config": self.proxy.config,
                "dataset": self.dataset.name, "batch_seed": self.batch_seed}

    def __call__(self, jobs):
        """``(genotype, seed)`` jobs -> ``(position, (components, seconds, threads, device))`` as
        each architecture is scored (:meth:`InProcessEvaluator.__call__`)."""
        return self.evaluator(jobs)

    def describe(self) -> str:
        return self.evaluator.describe()

    def close(self):
        """Stop the evaluator's workers, if any."""
        self.evaluator.close()


def make_scorer(dataset="digits", proxy="rscore", preset="reference", proxy_kwargs=None, device="auto",
                batch_seed=None, data_path=None, root=None, download=False, workers=0, ray_address=None,
                gpus_per_worker=None, threads_per_worker=1) -> ProxyScorer:
    """Load ``dataset``, build ``proxy`` with ``preset`` (``proxy_kwargs`` override its knobs) on
    ``device``, draw the proxy's batch (``batch_seed``) and choose where it scores.

    In process on the CPU, the R-Score scores as many architectures at once as torch has
    threads, one torch thread each (:class:`InProcessEvaluator`). ``workers > 0`` scores on Ray
    actors (``ray_address=`` a cluster, ``gpus_per_worker=`` fractional GPUs, by default the
    cluster's GPUs shared evenly when ``device`` is cuda; ``threads_per_worker`` torch threads
    each); scores equal the in-process ones. Ray assigns the workers their GPUs, so a device
    index (``cuda:1``; ``cuda:0`` on a machine with several GPUs) cannot be honoured by workers
    on GPUs and is refused."""
    if workers and ignores_device_index(device, gpus_per_worker):
        raise ProxyError(f"device={device} with workers: Ray gives each worker its GPU, so an index cannot "
                         f"be honoured; use device=cuda (CUDA_VISIBLE_DEVICES chooses the GPUs)")
    device = resolve_device(device)
    data = load_dataset(dataset, root=root, download=download, data_path=data_path)
    knobs = dict(proxy_kwargs or {})
    if preset is not None:
        knobs.setdefault("preset", preset)
    knobs.update(num_classes=data.num_classes, mean=data.mean, std=data.std)
    built = get_proxy(proxy, **knobs, device=device)
    images, labels = proxy_batch(data, built.batch_size, seed=batch_seed)
    if workers:
        evaluator = RayEvaluator(proxy, {**knobs, "device": device.type}, images, labels, workers=workers,
                                 ray_address=ray_address, gpus_per_worker=gpus_per_worker,
                                 threads_per_worker=threads_per_worker)
    else:
        evaluator = InProcessEvaluator(built, images, labels)
    return ProxyScorer(built, evaluator, data, device, batch_seed)
