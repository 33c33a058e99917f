"""The architecture a training run is asked for, and the name its run goes by.

Exactly one of: ``genotype=`` (DARTS or JSON text, or a name looked up in ``genotypes_file=``),
``from_run=`` (a search run folder's ``best_rscore`` or ``knee`` pick), or ``arch=`` (a
hand-designed network such as ``resnet18``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nas_problem import Genotype, GenotypeError, load_genotypes

from .checkpoints import MANUAL_ARCHS
from .settings import TrainingError

PICKS = ("best_rscore", "knee")


def _genotype_from_value(value, genotypes_file) -> tuple[Genotype, str]:
    """A genotype given as DARTS text, JSON text (or the mapping YAML made of it), or a name."""
    if isinstance(value, dict):
        genotype = Genotype.from_json(value)
        return genotype, "genotype-" + hashlib.sha1(genotype.key().encode()).hexdigest()[:8]
    text = str(value).strip()
    if text.startswith("Genotype") or text.startswith("{"):
        genotype = Genotype.parse(text)
        return genotype, "genotype-" + hashlib.sha1(genotype.key().encode()).hexdigest()[:8]
    if not genotypes_file:
        raise TrainingError(f"genotype {text!r} is neither DARTS/JSON genotype text nor a name "
                            "looked up in a file (give genotypes_file=PATH)")
    path = Path(str(genotypes_file)).expanduser()
    if not path.is_file():
        raise TrainingError(f"genotypes_file not found: {path}")
    try:
        known = load_genotypes(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path}: not a JSON genotype file ({error})") from None
    if text not in known:
        raise GenotypeError(f"unknown genotype name {text!r} in {path} (known: {', '.join(sorted(known))})")
    return known[text], text


def _genotype_from_run(run_dir, pick) -> tuple[Genotype, str]:
    if pick not in PICKS:
        raise TrainingError(f"pick must be one of {', '.join(PICKS)}, got {pick!r}")
    folder = Path(str(run_dir)).expanduser()
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise TrainingError(f"from_run: no summary.json in {folder} (is it a finished search run folder?)")
    try:
        summary = json.loads(summary_path.read_text())
        # a differentiable search ends in one genotype; a training-free one offers picks
        single = "genotype_json" in summary and pick not in summary
        genotype = summary["genotype_json"] if single else summary[pick]["genotype"]
    except json.JSONDecodeError as error:
        raise TrainingError(f"{summary_path}: not valid JSON ({error})") from None
    except (KeyError, TypeError):
        raise TrainingError(f"{summary_path} has no {pick!r} genotype") from None
    genotype = Genotype.from_json(genotype) if isinstance(genotype, dict) else Genotype.parse(str(genotype))
    # the folder's last three names (not the root of a shallow path) name the trained network
    parts = list(folder.resolve().parts[1:][-3:])
    return genotype, "-".join(parts if single else parts + [pick])


def resolve_architecture(config: dict) -> tuple[str, Genotype | None, str]:
    """(arch, genotype or None, default name) from exactly one of genotype=, from_run=, arch=."""
    arch = config.get("arch")
    given = [key for key in ("genotype", "from_run") if config.get(key) not in (None, "")]
    if arch not in (None, "", "darts"):
        if arch not in MANUAL_ARCHS:
            raise TrainingError(f"unknown arch {arch!r} (known: darts, {', '.join(MANUAL_ARCHS)})")
        if given:
            raise TrainingError(f"give either arch={arch} or {given[0]}=, not both")
        return arch, None, arch
    if len(given) != 1:
        raise TrainingError("say what to train: exactly one of genotype=<text|name>, from_run=<search run folder> "
                            "or arch=resnet18" + (" (got both genotype= and from_run=)" if given else ""))
    if given[0] == "genotype":
        genotype, name = _genotype_from_value(config["genotype"], config.get("genotypes_file"))
    else:
        genotype, name = _genotype_from_run(config["from_run"], config.get("pick", "best_rscore"))
    return "darts", genotype, name
