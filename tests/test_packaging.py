"""A plain (non-editable) install runs from any folder: the wheel holds every sub-package and
the shipped configs, and its `trnas` command finds a config by name."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command, cwd, timeout=600, env=None):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy without earlier build output: setuptools packs whatever stale files build/ still holds
    source = out / "source"
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "runs", "__pycache__", ".pytest_cache"))
    # built as `pip install .` builds it, in an isolated environment with the declared build backend
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], cwd=out)
    (built,) = out.glob("trnas-*.whl")
    return built


def test_the_wheel_holds_every_package_and_the_shipped_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("*/**/__init__.py")
                if p.parts[len(ROOT.parts)] not in ("tests", "examples", "build")}
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"
    configs = {p.name for p in (ROOT / "trnas" / "configs").glob("*.yaml")}
    assert configs and {f"trnas/configs/{name}" for name in configs} <= names


def test_the_installed_wheel_searches_from_another_folder(wheel, tmp_path):
    # the wheel's files alone, first on the path: the heavy dependencies (torch, ray, ...) come
    # from this environment, every module of trnas from the wheel, not from the checkout
    installed = tmp_path / "installed"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(installed),
         str(wheel)], cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run([sys.executable, "-c", "import trnas, evaluation.zoo, differentiable; print(trnas.__file__)"],
                  cwd=elsewhere, env=env)
    assert Path(located.stdout.strip()).is_relative_to(installed)
    run([str(installed / "bin" / "trnas"), "search", "--config", "quick", "pop_size=4", "n_clusters=2", "n_gen=1",
         "n_calibration=4", "out_dir=run"], cwd=elsewhere, env=env)
    assert (elsewhere / "run" / "front.csv").is_file()
