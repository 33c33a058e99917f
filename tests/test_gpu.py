"""The CUDA paths: they run where torch sees a GPU and skip elsewhere (CI has none).

On a GPU machine, ``python -m pytest -q tests/test_gpu.py`` runs them; ``examples/gpu_check.sh``
does so before its benchmarks. They check what the CPU tests cannot: that every proxy, the
replicated Ψ, Φ's batched similarities, Ray actors sharing one GPU, training with mixed
precision and the attacks all run on the device, agree with the reference implementation
and with the CPU, and repeat exactly.
"""
import json

import pytest
import torch

from evaluation import available_proxies, get_proxy, load_dataset, proxy_batch
from evaluation.training import train
from helpers import RACL, score_in_process_and_on_workers
from reference_rscore import reference_measure
from test_reference_rscore import PHI_REL, PSI_REL, random_genotypes
from trnas.cli import main

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("preset, n, knobs", [("reference", 4, {}), ("paper", 1, {"psi_inits": 2})])
def test_rscore_on_cuda_agrees_with_the_reference_on_cuda(digits, preset, n, knobs):
    scorer = get_proxy(f"rscore:{preset}", device=DEVICE, mean=digits.mean, std=digits.std, **knobs)
    x, y = proxy_batch(digits, scorer.config["n_images"])
    for i, genotype in enumerate(random_genotypes(n)):
        production = scorer.measure(genotype, x, y, seed=i)
        reference = reference_measure(genotype, x, y, seed=i, preset=preset, mean=digits.mean, std=digits.std,
                                      device=DEVICE, **knobs)
        assert production["psi"] == pytest.approx(reference["psi"], rel=PSI_REL)
        assert production["phi"] == pytest.approx(reference["phi"], rel=PHI_REL[preset])


def test_rscore_on_cuda_repeats_exactly_and_stays_close_to_the_cpu(digits):
    x, y = proxy_batch(digits, 16)
    on_gpu = get_proxy("rscore", device=DEVICE, mean=digits.mean, std=digits.std)
    on_cpu = get_proxy("rscore", device="cpu", mean=digits.mean, std=digits.std)
    for i, genotype in enumerate(random_genotypes(3, seed=1)):
        first = on_gpu.measure(genotype, x, y, seed=i)
        # another proxy object, after other work on the device: the same numbers, bit for bit
        again = get_proxy("rscore", device=DEVICE, mean=digits.mean, std=digits.std).measure(genotype, x, y, seed=i)
        assert first == again
        cpu = on_cpu.measure(genotype, x, y, seed=i)
        # other kernels sum in another order: Ψ may flip a near-zero sign, FGSM a near-zero gradient
        assert first["psi"] == pytest.approx(cpu["psi"], rel=PSI_REL)
        assert first["phi"] == pytest.approx(cpu["phi"], rel=PHI_REL["reference"])


# the predictor needs a model file; it scores with its input proxies, each covered here
@pytest.mark.parametrize("name", [name for name in available_proxies() if name != "predictor"])
def test_every_proxy_scores_on_cuda(digits, name):
    scorer = get_proxy(name, device=DEVICE, mean=digits.mean, std=digits.std)
    x, y = proxy_batch(digits, scorer.batch_size)
    genotype = random_genotypes(1, seed=2)[0]
    components = scorer.measure(genotype, x, y, seed=0)
    assert scorer.is_valid(components), components
    assert components == scorer.measure(genotype, x, y, seed=0)


@pytest.mark.parametrize("share", [0.5, None])
def test_ray_actors_share_the_gpu_and_score_as_in_process(tmp_path, share):
    pytest.importorskip("ray")
    options = dict(dataset="digits", proxy="rscore", preset="reference", device=DEVICE, seed=3, n_calibration=0)
    genotypes = random_genotypes(6, seed=4)
    # share None: the default, the GPUs shared evenly between the two workers
    expected, got = score_in_process_and_on_workers(genotypes, options, tmp_path / "archive.jsonl", workers=2,
                                                    gpus_per_worker=share)
    # the actors' GPU scores, bit for bit (CPU scores would differ in their last digits)
    assert [r["components"] for r in got] == [r["components"] for r in expected]
    assert {r["device"] for r in got} == {"cuda"} == {r["device"] for r in expected}


def test_workers_kept_on_the_cpu_say_so(tmp_path):
    pytest.importorskip("ray")
    from trnas import make_problem
    problem = make_problem(dataset="digits", device=DEVICE, seed=3, n_calibration=0, workers=2, gpus_per_worker=0,
                           archive=tmp_path / "archive.jsonl")
    try:
        records = problem.score_genotypes(random_genotypes(2, seed=5))
        described = problem.scorer.describe()
    finally:
        problem.close()
    # the search runs on cuda, its workers on the CPU: the archive names where each score came from
    assert problem.device.type == "cuda" and "on the CPU" in described
    assert {r["device"] for r in records} == {"cpu"}


def test_training_with_mixed_precision_and_attacks_on_cuda(tmp_path, capsys):
    for name, seed in (("a", 0), ("b", 1)):
        result = train(dict(genotype=RACL, channels=4, layers=2, dataset="digits", method="pgd", steps=2, epochs=2,
                            n_train=256, batch_size=64, eval_n=64, eval_steps=2, augment=True, device=DEVICE,
                            amp="auto", seed=seed, out_dir=str(tmp_path / name)), log=lambda line: None)
        # a network this small and this briefly trained is near chance: no ordering of accuracies holds
        assert result["epochs"] == 2 and 0 <= result["robust_acc"] <= 100 and 0 <= result["clean_acc"] <= 100
    out = tmp_path / "attack"
    assert main(["attack", f"checkpoints={tmp_path / 'a'},{tmp_path / 'b'}",
                 "attacks=fgsm,pgd20,cw,autoattack", "n_examples=64", "autoattack_n=32", f"device={DEVICE}",
                 f"out_dir={out}"]) == 0
    report = json.loads((out / "attack.json").read_text())
    for model in report["models"]:
        assert set(model["accuracy"]) == {"clean", "fgsm", "pgd20", "cw", "autoattack"}
        assert all(0 <= value <= 100 for value in model["accuracy"].values())
    assert (out / "transfer.md").is_file()
