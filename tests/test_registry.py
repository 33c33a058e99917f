import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evaluation import ProxyError, available_proxies, get_proxy, proxy
from evaluation import registry, runtime
from evaluation.rscore import PRESETS


def test_rscore_is_registered():
    assert "rscore" in available_proxies()
    assert available_proxies() == sorted(available_proxies())


def test_preset_suffix_sets_the_preset_and_its_knobs():
    scorer = get_proxy("rscore:paper", device="cpu")
    assert scorer.config["preset"] == "paper"
    for knob, value in PRESETS["paper"].items():
        assert scorer.config[knob] == value
    assert scorer.config == get_proxy("rscore", preset="paper", device="cpu").config
    assert get_proxy("rscore", device="cpu").config["preset"] == "reference"


def test_explicit_knob_overrides_the_preset_and_config_is_json():
    scorer = get_proxy("rscore:reference", device="cpu", psi_inits=4, similarity="cosine", num_classes=7)
    assert scorer.config["psi_inits"] == 4
    assert scorer.config["similarity"] == "cosine"
    assert scorer.config["num_classes"] == 7
    assert scorer.direction == +1 and scorer.name == "rscore"
    json.loads(json.dumps(scorer.config))


def test_unknown_name_lists_available():
    with pytest.raises(ProxyError, match="unknown proxy 'nope'.*rscore"):
        get_proxy("nope")
    assert issubclass(ProxyError, ValueError)


def test_unknown_knob_lists_available():
    with pytest.raises(ProxyError, match="unknown knob colour for proxy 'rscore'.*psi_inits"):
        get_proxy("rscore", colour="red")


@pytest.mark.parametrize("name, knobs", [
    ("rscore:bogus", {}),
    ("rscore:paper", {"preset": "reference"}),
    ("rscore", {"similarity": "l2"}),
    ("rscore", {"network": "huge"}),
    ("rscore", {"psi_inits": 0}),
    ("rscore", {"n_images": 2.5}),
    ("rscore", {"beta": "big"}),
    ("rscore", {"epsilon": -1.0}),
    ("rscore", {"std": (0.2, 0.0, 0.2)}),
    ("rscore", {"num_classes": 1}),
    ("rscore", {"device": "tpu"}),
])
def test_bad_knob_values_raise_proxy_error(name, knobs):
    with pytest.raises(ProxyError):
        get_proxy(name, **{"device": "cpu", **knobs})


def test_a_new_proxy_needs_only_a_decorated_factory(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))

    class Constant(registry.Proxy):
        name = "constant"

        def __init__(self, value=1.0):
            self.config = {"value": value}

        def measure(self, genotype, images, labels, seed):
            return {"value": self.config["value"]}

        def score(self, components, calibration=None):
            return components["value"] if self.is_valid(components) else float("nan")

    @proxy("constant")
    def make_constant(value: float = 1.0):
        return Constant(value)

    assert "constant" in available_proxies()
    scorer = get_proxy("constant", value=3.0)
    assert scorer.score(scorer.measure(None, None, None, 0)) == 3.0
    assert not scorer.is_valid({"value": float("inf")})
    with pytest.raises(ProxyError, match="unknown knob"):
        get_proxy("constant", preset="x")
    with pytest.raises(ProxyError, match="registered twice"):
        proxy("constant")(lambda: None)


# allocates and frees 53 MB in tensors of 1 to 12 MB, as a pass of Ψ does, and prints the page
# faults of the last five rounds; "proxy" first builds a proxy that scores on the CPU
_ROUNDS = """
import resource, sys
import torch
from evaluation import get_proxy
from evaluation.runtime import retain_freed_memory
if sys.argv[1] == "proxy":
    get_proxy("naswot", device="cpu")
    assert retain_freed_memory.cache_info().currsize == 1 and retain_freed_memory()
def round_trip():
    sizes = (3 * 2 ** 20, 2 ** 21, 2 ** 19, 3 * 2 ** 19, 2 ** 20, 3 * 2 ** 20, 2 ** 21, 2 ** 18)  # 53 * 2**18 floats
    tensors = [torch.ones(size) for size in sizes]
    del tensors
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    round_trip()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _glibc_allocator_as_shipped() -> bool:
    if not (runtime.glibc_allocates_as_shipped() and sys.maxsize > 2 ** 32):
        return False
    try:  # huge pages everywhere fault in 2 MB at a time: too few faults to tell the two apart
        return "[always]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return True


@pytest.mark.skipif(not _glibc_allocator_as_shipped(),
                    reason="retain_freed_memory tunes 64-bit glibc's allocator, with 4 KB pages and no user settings")
def test_a_cpu_proxy_keeps_freed_memory_for_reuse_instead_of_faulting_it_in_again():
    def faults(mode):
        done = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    pages = 5 * 4 * 53 * 2 ** 18 // resource.getpagesize()
    default, retained = faults("default"), faults("proxy")
    # glibc hands much of the memory back and faults it in again each round (seen here: a fifth
    # to all of it, depending on the process); retained, it is reused (seen: under 4 %)
    assert default > pages / 10
    assert retained < pages / 20 and 5 * retained < default


def test_allocator_settings_of_the_user_are_left_alone(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=4096")
    assert runtime._allocator_left_to_the_user()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=512")
    assert not runtime._allocator_left_to_the_user()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert runtime._allocator_left_to_the_user()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert runtime._allocator_left_to_the_user()


def test_an_rscore_proxy_pickles_and_copies_as_its_settings():
    import copy
    import pickle
    scorer = get_proxy("rscore", device="cpu")
    for clone in (pickle.loads(pickle.dumps(scorer)), copy.deepcopy(scorer)):
        assert clone.config == scorer.config and clone.last_timing == {}


def test_exact_numerics_held_by_two_threads_keeps_its_settings_until_the_last_leaves():
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=True, deterministic=False, allow_tf32=True):
        # the order two scoring threads can take: both enter, the first leaves while the second measures
        first, second = runtime.exact_numerics(), runtime.exact_numerics()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == (False, True, False)
        second.__exit__(None, None, None)
        assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == (True, False, True)
