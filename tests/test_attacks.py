"""`trnas attack`: every attack bites and respects its budget, the transfer matrix, HRS, tables, bad input."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evaluation.attacks import (ATTACK_DEFAULTS, ATTACK_NAMES, AttackError, evaluate_model, hrs, markdown_table,
                                markdown_transfer, parse_attacks, run_attack, make_attack, transfer_matrix)
from evaluation.datasets import NormalizedNet, load_dataset
from evaluation.training import train
from helpers import RACL, error_line
from nas_problem import Genotype
from trnas.cli import main
from trnas.config import load_config

EPS = 16 / 255  # a digits CNN shrugs off much of 8/255; at 16/255 every L-inf attack must bite clearly


def small_cnn(dataset, seed: int, epochs: int = 3) -> nn.Module:
    """A two-convolution CNN trained briefly (standard training) on the digits."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 10))
    model = NormalizedNet(net, dataset.mean, dataset.std)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(dataset.x_train), generator=generator)
        for start in range(0, len(order), 64):
            index = order[start:start + 64]
            loss = F.cross_entropy(model(dataset.x_train[index]), dataset.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    model = small_cnn(digits, seed=0)
    return model, digits.x_test[:100], digits.y_test[:100]


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_each_attack_lowers_accuracy_and_keeps_its_budget(trained, name):
    model, images, labels = trained
    if name == "autoattack":  # the ensemble is slow on the points that survive APGD
        images, labels = images[:40], labels[:40]
    clean, _ = run_attack(model, None, images, labels)
    assert clean["accuracy"] > 80
    torch.manual_seed(0)
    attack = make_attack(name, model, eps=EPS, alpha=2 / 255, seed=0)
    record, adversarial = run_attack(model, attack, images, labels)
    assert record["accuracy"] < clean["accuracy"] - 5, (name, record["accuracy"], clean["accuracy"])
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if name == "cw":  # L2: unbounded in L-inf, but it must have moved some images
        assert record["max_l2"] > 0
    else:
        assert (adversarial - images).abs().max() <= EPS + 1e-6
        assert record["max_linf"] <= EPS + 1e-6


def test_evaluate_model_reports_clean_and_each_attack(trained):
    model, images, labels = trained
    results = evaluate_model(model, images[:50], labels[:50], ["fgsm", "pgd20"], eps=EPS)
    assert set(results) == {"clean", "fgsm", "pgd20"}
    assert all(r["n"] == 50 for r in results.values())
    # PGD-20 is at least as strong as FGSM here, and both lower the clean accuracy
    assert results["pgd20"]["accuracy"] <= results["fgsm"]["accuracy"] < results["clean"]["accuracy"]


def test_transfer_matrix(trained, digits):
    model, images, labels = trained
    other = small_cnn(digits, seed=1, epochs=2)
    matrix = transfer_matrix([model, other], images, labels, eps=EPS, seed=0)
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    torch.manual_seed(0)
    white_box, _ = run_attack(model, make_attack("pgd20", model, eps=EPS), images, labels)
    assert matrix[0][0] == pytest.approx(white_box["accuracy"])
    # examples made on another model transfer, but hurt less than the white-box attack
    for i in range(2):
        assert matrix[i][i] < matrix[i][1 - i]


def test_hrs_by_hand():
    assert hrs(80.0, 40.0) == pytest.approx(2 * 80 * 40 / 120)  # 53.33
    assert hrs(85.66, 54.56) == pytest.approx(66.66, abs=0.01)  # TRNAS, paper Table 2
    assert hrs(50.0, 50.0) == 50.0
    assert hrs(0.0, 0.0) == 0.0


def test_attack_names_are_read_loosely_and_checked():
    assert parse_attacks("PGD-20, fgsm,AA") == ["pgd20", "fgsm", "autoattack"]
    assert parse_attacks(["cw", "pgd_100", "cw"]) == ["cw", "pgd100"]
    assert parse_attacks(None) == list(ATTACK_NAMES)
    with pytest.raises(AttackError, match="unknown attack"):
        parse_attacks("pgd")


def test_the_quick_preset_loads_and_leaves_out_the_slow_attacks():
    quick = load_config("attack_quick", [], ATTACK_DEFAULTS)
    assert set(parse_attacks(quick["attacks"])) == {"fgsm", "pgd20", "cw"}
    assert quick["n_examples"] <= 500 and quick["cw_steps"] < ATTACK_DEFAULTS["cw_steps"]


def test_tables_are_shaped_like_the_paper():
    models = [dict(name="TRNAS", params_m=4.3, flops_m=673.28, hrs=hrs(85.66, 54.56),
                   accuracy=dict(clean=85.66, fgsm=61.38, pgd20=54.56, pgd100=53.95, autoattack=51.76))]
    table = markdown_table(models, ["fgsm", "pgd20", "pgd100", "cw", "autoattack"]).splitlines()
    assert table[0] == ("| Model | Params (M) | FLOPs (M) | Clean | FGSM | PGD-20 | PGD-100 | CW | AutoAttack "
                        "| HRS |")
    assert table[2] == "| TRNAS | 4.300 | 673.3 | 85.66 | 61.38 | 54.56 | 53.95 | – | 51.76 | 66.66 |"
    transfer = markdown_transfer(["A", "B"], [[10.0, 20.0], [30.0, 5.0]], "pgd20").splitlines()
    assert transfer[0] == "| Source \\ Target | A | B |"
    assert transfer[2] == "| A | - | 20.00 |" and transfer[3] == "| B | 30.00 | - |"


# ----- the command -----
def tiny_checkpoint(tmp_path, name, genotype=RACL, seed=0):
    train(dict(genotype=genotype, channels=4, layers=2, dataset="digits", method="standard", epochs=1, n_train=64,
               batch_size=32, eval_n=0, augment=False, device="cpu", seed=seed, out_dir=str(tmp_path / name)),
          log=lambda line: None)
    return tmp_path / name / "checkpoint.pt"


def test_attack_command_writes_table_transfer_matrix_and_json(tmp_path, capsys):
    first = tiny_checkpoint(tmp_path, "a")
    tiny_checkpoint(tmp_path, "b", seed=1)
    out = tmp_path / "attack"
    assert main(["attack", f"checkpoints=[{first}, {tmp_path / 'b'}]", "attacks=fgsm,pgd20",
                 "n_examples=30", f"out_dir={out}", "device=cpu", "names=[first, second]"]) == 0
    report = json.loads((out / "attack.json").read_text())
    assert report["n_examples"] == 30 and report["attacks"] == ["fgsm", "pgd20"]
    for model in report["models"]:
        accuracy = model["accuracy"]
        assert set(accuracy) == {"clean", "fgsm", "pgd20"}
        assert model["hrs"] == pytest.approx(hrs(accuracy["clean"], accuracy["pgd20"]))
        assert model["params_m"] > 0 and model["flops_m"] > 0 and Genotype.parse(model["genotype"])
    assert len(report["transfer"]["accuracy"]) == 2
    table = (out / "table.md").read_text()
    assert "| Model | Params (M) | FLOPs (M) | Clean | FGSM | PGD-20 | HRS |" in table and "| first |" in table
    assert "| Source \\ Target | first | second |" in (out / "transfer.md").read_text()
    assert "PGD-20" in capsys.readouterr().out


def test_checkpoint_of_another_architecture_exits_2(tmp_path, capsys):
    checkpoint = torch.load(tiny_checkpoint(tmp_path, "a"), weights_only=False)
    # a checkpoint that claims a different architecture than its weights were trained for
    checkpoint["spec"]["genotype"] = str(Genotype.parse(RACL)).replace("sep_conv_5x5", "max_pool_3x3")
    torch.save(checkpoint, tmp_path / "wrong.pt")
    assert main(["attack", f"checkpoints={tmp_path / 'wrong.pt'}", "attacks=fgsm", "device=cpu",
                 f"out_dir={tmp_path / 'out'}"]) == 2
    assert "does not fit" in error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["checkpoints={missing}"], "checkpoint not found"),
    (["checkpoints={a}", "attacks=pgd7"], "unknown attack 'pgd7'"),
    (["checkpoints={not_a_checkpoint}"], "not a readable checkpoint"),
    ([], "no checkpoints given"),
])
def test_bad_attack_input_exits_2(tmp_path, capsys, argv, message):
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    paths = dict(missing=tmp_path / "nope.pt", a=tmp_path / "junk.pt", not_a_checkpoint=tmp_path / "junk.pt")
    if any("{a}" in item for item in argv):
        paths["a"] = tiny_checkpoint(tmp_path, "a")
    argv = [item.format(**paths) for item in argv]
    assert main(["attack", *argv, f"out_dir={tmp_path / 'out'}", "device=cpu"]) == 2
    assert message in error_line(capsys)
