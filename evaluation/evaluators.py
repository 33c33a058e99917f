"""How a batch of architectures gets scored: in this process by default (issue 5 adds workers)."""
from __future__ import annotations

import time


class InProcessEvaluator:
    """Scores architectures one after another with a proxy and a fixed data batch."""

    def __init__(self, proxy, images, labels):
        self.proxy = proxy
        self.images = images
        self.labels = labels

    def __call__(self, jobs):
        """jobs: list of (genotype, seed) -> list of (components, seconds)."""
        results = []
        for genotype, seed in jobs:
            start = time.perf_counter()
            components = self.proxy.measure(genotype, self.images, self.labels, seed)
            results.append((components, time.perf_counter() - start))
        return results
