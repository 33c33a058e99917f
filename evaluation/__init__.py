"""Proxy scorers (a registry), data sets, and the helpers around them.

A new proxy is one module that registers its factory with ``@proxy("name")`` plus one
import line below.
"""
from .datasets import (Dataset, DatasetError, DatasetNotFoundError, Normalize, load_dataset,
                       proxy_batch)
from .registry import Proxy, ProxyError, available_proxies, get_proxy, proxy
from .scorer import ProxyScorer, make_scorer

from . import rscore, zoo  # noqa: F401  (registering "rscore" and the zoo's proxies)

__all__ = ["Dataset", "DatasetError", "DatasetNotFoundError", "Normalize", "load_dataset", "proxy_batch",
           "Proxy", "ProxyError", "available_proxies", "get_proxy", "proxy", "ProxyScorer", "make_scorer"]
