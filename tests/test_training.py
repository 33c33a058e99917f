"""`trnas train`: genotype sources, PGD vs standard training, exact resume, run folder, bad input."""
import json
from pathlib import Path

import pytest
import torch
import torchattacks

from evaluation.attacks import run_attack
from evaluation.datasets import load_dataset
from evaluation.architectures import resolve_architecture
from evaluation.checkpoints import load_model, model_cost, resnet18_cifar
from evaluation.train_methods import TrainingMethod, augment_batch
from evaluation.training import TRAIN_DEFAULTS, TrainingError, check_config, train
from helpers import RACL, error_line
from nas_problem import Genotype, GenotypeError
from trnas.cli import main
from trnas.config import load_config

SHARED = Path(__file__).resolve().parents[2] / "shared"
GENOTYPES = SHARED / "data" / "published_genotypes.json"

TINY = dict(genotype=RACL, channels=4, layers=2, dataset="digits", augment=False, device="cpu", batch_size=32)


def quiet(_line):
    pass


def need_shared():
    if not GENOTYPES.is_file():
        pytest.skip("../shared/data not present")


class Kill(Exception):
    """Stands in for the process dying right after a checkpoint hit the disk."""


def test_resume_after_a_kill_matches_the_uninterrupted_run_exactly(tmp_path, capsys):
    # TRADES, augmentation, drop-path and the auxiliary head: every random stream a run draws from
    config = dict(TINY, method="trades", steps=1, epochs=3, n_train=64, eval_n=16, eval_steps=1, augment=True,
                  drop_path_prob=0.2, auxiliary=True, milestones=[2])
    train(dict(config, out_dir=str(tmp_path / "straight")), log=print)

    def kill_after_first(epoch):
        if epoch == 1:
            raise Kill
    with pytest.raises(Kill):
        train(dict(config, out_dir=str(tmp_path / "killed")), log=quiet, callback=kill_after_first)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    train(dict(config, out_dir=str(tmp_path / "killed")), resume=True, log=quiet)

    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert straight["epoch"] == resumed["epoch"] == 3
    assert straight["model"].keys() == resumed["model"].keys()
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for key, state in straight["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed["optimizer"]["state"][key]["momentum_buffer"])
    strip = [{k: v for k, v in row.items() if not k.endswith("_s")} for row in straight["history"]]
    assert strip == [{k: v for k, v in row.items() if not k.endswith("_s")} for row in resumed["history"]]

    # the run folder: config, curves (CSV + PNG), log, result; a progress line per epoch
    run = tmp_path / "straight"
    for name in ("checkpoint.pt", "config.yaml", "history.csv", "curves.png", "train.log", "result.json"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3
    result = json.loads((run / "result.json").read_text())
    assert result["epochs"] == 3 and result["method"] == "trades" and Genotype.parse(result["genotype"])
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "ETA" in out and "clean" in out and "PGD-1" in out and "loss" in out


def test_pgd_training_beats_standard_training_under_pgd(tmp_path):
    dataset = load_dataset("digits")
    images, labels = dataset.x_test[:200], dataset.y_test[:200]
    robust = {}
    for method in ("standard", "pgd"):
        train(dict(TINY, method=method, steps=2, alpha="4/255", epochs=3, n_train=500, lr=0.05, milestones=[2],
                   eval_n=0, seed=0, out_dir=str(tmp_path / method)), log=quiet)
        model, _, _ = load_model(tmp_path / method)
        torch.manual_seed(0)
        assert run_attack(model, None, images, labels)[0]["accuracy"] > 30  # both learned something
        pgd = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)
        robust[method] = run_attack(model, pgd, images, labels)[0]["accuracy"]
    assert robust["pgd"] > robust["standard"] + 10, robust


def test_genotype_sources(tmp_path):
    text = str(Genotype.parse(RACL))
    arch, genotype, name = resolve_architecture({"genotype": text})
    assert arch == "darts" and genotype == Genotype.parse(RACL) and name.startswith("genotype-")
    # YAML turns JSON text given as key=value into a mapping
    assert resolve_architecture({"genotype": json.loads(RACL)})[1] == genotype
    assert resolve_architecture({"arch": "resnet18"}) == ("resnet18", None, "resnet18")

    run = tmp_path / "search" / "seed0"
    run.mkdir(parents=True)
    knee = Genotype.parse(text.replace("sep_conv_5x5", "dil_conv_5x5"))
    (run / "summary.json").write_text(json.dumps({"best_rscore": {"genotype": text, "r_score": 1.0},
                                                  "knee": {"genotype": str(knee)}}))
    assert resolve_architecture({"from_run": str(run)})[1] == genotype
    arch, picked, name = resolve_architecture({"from_run": str(run), "pick": "knee"})
    assert picked == knee and name.endswith("knee")

    for bad in ({}, {"genotype": text, "arch": "resnet18"}, {"genotype": text, "from_run": str(run)},
                {"arch": "vgg"}, {"genotype": "DARTS_V2"}, {"from_run": str(tmp_path)},
                {"from_run": str(run), "pick": "middle"}):
        with pytest.raises(TrainingError):
            resolve_architecture(bad)


def test_genotype_by_name_from_the_published_file():
    need_shared()
    arch, genotype, name = resolve_architecture({"genotype": "TRNAS_c10", "genotypes_file": str(GENOTYPES)})
    assert arch == "darts" and name == "TRNAS_c10" and genotype.uses("sep_conv_5x5")
    with pytest.raises(GenotypeError, match="unknown genotype name"):
        resolve_architecture({"genotype": "NOT_A_NAME", "genotypes_file": str(GENOTYPES)})


def test_resnet18_is_adapted_to_32x32_images():
    net = resnet18_cifar(10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    spec = type("Spec", (), dict(arch="resnet18", num_classes=10))()
    params, flops = model_cost(spec)
    assert params == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)
    assert 11.1 < params < 11.2 and 500 < flops < 600  # the well-known 11.17 M and 0.56 G multiply-adds


def test_presets_load_and_the_paper_preset_is_the_paper_protocol():
    paper = check_config(load_config("train_paper", [], TRAIN_DEFAULTS))
    assert (paper["channels"], paper["layers"], paper["epochs"], paper["batch_size"]) == (36, 20, 120, 64)
    assert (paper["lr"], paper["momentum"], paper["milestones"], paper["gamma"]) == (0.1, 0.9, [100], 0.1)
    assert (paper["method"], paper["steps"]) == ("pgd", 7)
    assert paper["eps"] == pytest.approx(8 / 255) and paper["alpha"] == pytest.approx(2 / 255)
    quick = check_config(load_config("train_quick", [], TRAIN_DEFAULTS))
    assert quick["channels"] <= 8 and quick["layers"] <= 5 and quick["epochs"] <= 5 and quick["n_train"]
    assert quick["method"] == "pgd"  # quick, but still adversarial training


def test_augmentation_is_seeded_and_stays_in_range():
    images = torch.rand(8, 3, 32, 32)
    first = augment_batch(images, torch.Generator().manual_seed(3))
    again = augment_batch(images, torch.Generator().manual_seed(3))
    assert first.shape == images.shape and torch.equal(first, again)
    assert first.min() >= 0 and first.max() <= 1 and not torch.equal(first, images)


# ----- bad input: one line on stderr, exit status 2 -----
def tiny_cli_run(tmp_path, name="run", *extra):
    return main(["train", f"genotype={RACL}", "channels=4", "layers=2", "epochs=1", "n_train=32", "eval_n=8",
                 "eval_steps=1", "steps=1", "device=cpu", f"out_dir={tmp_path / name}", *extra])


def test_unknown_genotype_name_exits_2(tmp_path, capsys):
    need_shared()
    assert main(["train", "genotype=NOT_A_NAME", f"genotypes_file={GENOTYPES}", f"out_dir={tmp_path}"]) == 2
    assert "unknown genotype name 'NOT_A_NAME'" in error_line(capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("genotype, message", [
    ("Genotype(normal=[('sep_conv_3x3', 0)], reduce=[])", "expected 8 (op, input) pairs"),
    ("Genotype(normal=[('bogus_op', 0), ('sep_conv_3x3', 1)]", "malformed genotype"),
    ('{"normal": [["sep_conv_3x3", 0]]}', "reduce"),
])
def test_malformed_genotype_exits_2(tmp_path, capsys, genotype, message):
    # genotype text needs no quoting (YAML reads it as text, or JSON as a mapping); nothing is written
    assert main(["train", f"genotype={genotype}", f"out_dir={tmp_path / 'run'}"]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_missing_data_set_exits_2(tmp_path, capsys):
    assert main(["train", "arch=resnet18", "dataset=npz", f"data_path={tmp_path / 'missing.npz'}",
                 f"out_dir={tmp_path / 'run'}"]) == 2
    assert "not found" in error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [("method=adversarial", "method must be one of"),
                                               ("eps=lots", "eps: expected a number"),
                                               ("batchsize=3", "unknown config key")])
def test_bad_settings_exit_2(tmp_path, capsys, override, message):
    assert main(["train", "arch=resnet18", override, f"out_dir={tmp_path / 'run'}"]) == 2
    assert message in error_line(capsys)


def test_resuming_a_checkpoint_of_another_architecture_exits_2(tmp_path, capsys):
    assert tiny_cli_run(tmp_path) == 0
    capsys.readouterr()
    other = str(Genotype.parse(RACL)).replace("sep_conv_5x5", "max_pool_3x3")
    assert main(["train", f"genotype={other}", "channels=4", "layers=2", "epochs=2", "n_train=32", "device=cpu",
                 f"out_dir={tmp_path / 'run'}", "--resume"]) == 2
    assert "cannot resume it as" in error_line(capsys)
    # a second run into a folder that holds a checkpoint must say so rather than overwrite it
    assert tiny_cli_run(tmp_path) == 2
    assert "--resume" in error_line(capsys)


@pytest.mark.filterwarnings("ignore:.*GradScaler.*:UserWarning")  # without a GPU the CUDA scaler turns itself off
def test_the_training_attack_runs_in_float32_under_mixed_precision(tmp_path, monkeypatch):
    """fp16 autocast would underflow the attack's input gradient (sign(0) leaves pixels
    unattacked); only the model's forward and loss belong under autocast."""
    import evaluation.training as training
    monkeypatch.setattr(training, "use_amp", lambda setting, device: True)  # CPU autocast stands in for CUDA's
    original = TrainingMethod.attack
    inside_autocast, forward_precision = [], []

    def recording_attack(self, model):
        attack = original(self, model)

        def run(x, y):
            inside_autocast.append(torch.is_autocast_enabled("cpu"))
            return attack(x, y)
        return run

    monkeypatch.setattr(TrainingMethod, "attack", recording_attack)
    original_loss = TrainingMethod.loss

    def recording_loss(self, model, adversarial, x, y, spec):
        forward_precision.append(torch.is_autocast_enabled("cpu"))
        return original_loss(self, model, adversarial, x, y, spec)

    monkeypatch.setattr(TrainingMethod, "loss", recording_loss)
    train(dict(TINY, method="pgd", steps=1, epochs=1, n_train=64, eval_n=0, seed=0, out_dir=str(tmp_path)), log=quiet)
    assert inside_autocast and not any(inside_autocast)
    assert forward_precision and all(forward_precision)
