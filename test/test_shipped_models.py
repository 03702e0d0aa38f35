"""The models that ship with the package: every file as its manifest says, loadable, carded, found by name."""

import json
import shutil
from pathlib import Path

import pytest

from qattn_ros.core.atomic import file_sha256
from qattn_ros.core.errors import CheckpointError
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.inference.shipped import DEFAULT, MANIFEST, models_dir, resolve
from qattn_ros.model.checkpoint import load_checkpoint, read_info

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
LISTING = json.loads((MODELS / MANIFEST).read_text())


def test_the_default_is_a_shipped_model_and_the_tree_is_where_they_are_found() -> None:
    assert LISTING[DEFAULT] in LISTING["models"]
    assert models_dir() is not None and (models_dir() / MANIFEST).read_text() == (MODELS / MANIFEST).read_text()


@pytest.mark.parametrize("name", sorted(LISTING["models"]))
def test_each_shipped_model_is_its_manifest_its_sidecar_and_its_card(name) -> None:
    entry = LISTING["models"][name]
    folder = MODELS / name
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "model.json", "model.safetensors"]
    assert sorted(entry["sha256"]) == sorted(f"{name}/{p.name}" for p in folder.iterdir()), "every file listed"
    for relative, digest in entry["sha256"].items():
        assert file_sha256(MODELS / relative) == digest, f"{relative} differs from {MANIFEST}"
    assert (folder / "model.safetensors").stat().st_size <= 8 * 2**20, "a shipped model stays under 8 MB"
    model, info = load_checkpoint(folder / "model")  # the sidecar's SHA-256 of the weights is checked here
    assert info.sha256 == read_info(folder / "model").sha256 and sum(p.numel() for p in model.parameters()) > 0
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {name}: ") and entry["summary"] in card
    for section in ("## Figures", "## Intended use", "## Limits", "## Licence"):
        assert section in card, f"{name}'s card has no {section}"
    assert info.sha256 in card, "the card names the weights it describes"


def test_a_shipped_model_is_found_by_name_and_a_path_stays_a_path(tmp_path) -> None:
    default = SteeringPredictor(DEFAULT, "cpu")
    assert default.shipped.name == LISTING[DEFAULT]
    assert Path(default.checkpoint) == MODELS / LISTING["models"][LISTING[DEFAULT]]["checkpoint"]
    assert resolve(str(MODELS / LISTING[DEFAULT] / "model.safetensors")) is None
    assert resolve("no_such_model") is None


def test_one_changed_byte_is_refused_by_name(tmp_path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(MODELS, copy)
    name = LISTING[DEFAULT]
    weights = copy / name / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"shipped model {name}: .*model.safetensors does not match"):
        resolve(DEFAULT, copy)
    shutil.copyfile(MODELS / name / "model.safetensors", weights)
    assert resolve(DEFAULT, copy).name == name, "restored, it loads again"
    (copy / name / "MODEL_CARD.md").unlink()
    with pytest.raises(CheckpointError, match="MODEL_CARD.md is missing"):
        resolve(name, copy)


def test_retraining_with_one_checkpoint_for_two_models_is_refused_before_any_work(capsys) -> None:
    from training.ship_models import main

    with pytest.raises(SystemExit) as stopped:
        main(["--only", "sim_roads", "--only", "udacity_hmb3", "--checkpoint", "runs/nowhere/best"])
    assert stopped.value.code == 2
    assert "--checkpoint evaluates one model" in capsys.readouterr().err
