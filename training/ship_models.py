#!/usr/bin/env python3
"""The models that ship with the package: retrain them with their recorded recipe, evaluate them, write their
cards and the manifest the node checks.

    python -m training.ship_models                  # retrain into runs/ship, compare with models/ (make models)
    python -m training.ship_models --install        # ... and put them in models/ (cards, manifest)
    python -m training.ship_models --only udacity_hmb3   # needs data/udacity (training/assemble_udacity.py)

sim_roads (the default): binary_sign, the closed-loop recipe (DAgger + augmentation,
config/train/closed_loop.yaml) on training/make_data.py's default roads, seed 0. udacity_hmb3: binary_sign on
HMB_3's train time block (benchmarks.udacity_ch2's recipe, seed 0). Each is evaluated as its card reports it:
test RMSE with a bootstrap 95 % interval, deletion against its own random order and ROAD most- over
least-relevant-first on 100 test frames (evaluation/evaluate.py), and for sim_roads the simulator sweep's
breaking points (2 held-out roads x 150 m per level) and a 1 km drive. The figures go to
benchmarks/results/shipped_models.json; `--install` writes models/<name>/{model.safetensors, model.json,
MODEL_CARD.md} and models/manifest.json (SHA-256 of every file). A rerun resumes every step.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.record import record
from qattn_ros.core.atomic import file_sha256, read_json, write_json, write_text
from qattn_ros.data.sources import open_source, spec_from_text
from qattn_ros.data.time_blocks import TimeBlocks
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.inference.shipped import MANIFEST
from qattn_ros.model.checkpoint import load_checkpoint, read_info
from qattn_ros.sim.drive import drive_predictor, merged_summary
from qattn_ros.sim.sweep import run_sweep
from qattn_ros.sim.track import HELD_OUT_SEEDS, generate_track
from qattn_ros.sim.world import SimConfig

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
RESULTS = ROOT / "benchmarks" / "results" / "shipped_models.json"
SYNTHETIC = "data_out/synthetic"
UDACITY = "data/udacity"
# the closed-loop recipe at benchmarks.closed_loop_training's full-mode size (recipe c there): 5 epochs on the static
# frames, 2 DAgger rounds of 8 roads x 200 m
SIM_ROADS_RECIPE = ("optim.epochs=5", "closed_loop.rounds=2", "closed_loop.worlds_per_round=8",
                    "closed_loop.track_m=200")  # fmt: skip
SHIPPED = {
    "sim_roads": {
        "what": "binary_sign, closed-loop recipe (DAgger + augmentation) on the simulator's roads",
        "intended": "The package's simulator (qattn_sim, sim.launch.py), replays of synthetic bags, trying the node "
        "on a camera before training your own",
        "data": f"{SYNTHETIC} (training/make_data.py defaults: 8,000 training frames) + 2 closed-loop rounds",
        "eval_data": f"{{kind: simlog, path: {SYNTHETIC}/test}}",
        "eval_args": [],
    },
    "udacity_hmb3": {
        "what": "binary_sign on real camera frames: Udacity Challenge 2's HMB_3 drive, its train time block",
        "intended": "A first look at the node on real forward-facing road video (640x480, daytime, highway and "
        "suburban roads); replays of Udacity-style recordings",
        "data": f"{UDACITY} (training/assemble_udacity.py): HMB_3's train time block, 3,910 frames; its test and "
        "validation blocks come first in time, 2 s apart",
        "eval_data": UDACITY,
        "eval_args": ["--block", "test", "--order", "test,val,train"],
        "blocks": TimeBlocks(0.7, 0.1, 0.2, 2.0, ("test", "val", "train")),  # benchmarks.udacity_ch2's
    },
}
LIMITS = {
    "sim_roads": [
        "Trained only on the synthetic renderer's roads: a real camera is outside everything it has seen.",
        "Under 99 % autonomy at the breaking points above; measured on 2 held-out roads x 150 m per level, and "
        "never beyond the sweep's last levels.",
    ],
    "udacity_hmb3": [
        "One drive, 3,910 frames, one car and camera, daylight: other cameras, weather or night are untested.",
        "On these frames its attention is not more faithful under deletion than its own random order "
        "(docs/real_data.md); read the heat map as a hint, not a proof.",
    ],
}
LICENCE = {
    "sim_roads": "Apache-2.0, as the package; trained on data the package generates.",
    "udacity_hmb3": "Apache-2.0, as the package; trained on Udacity's self-driving-car dataset (MIT licence).",
}


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def train(name: str) -> Path:
    """The model's recorded recipe, resumable: the checkpoint it ends with."""
    if name == "sim_roads":
        if not (ROOT / SYNTHETIC / "test" / "driving_log.csv").is_file():
            run([sys.executable, "training/make_data.py", "--out", SYNTHETIC])
        out = ROOT / "runs" / "ship" / "sim_roads"
        run([sys.executable, "training/train_closed_loop.py", "config/train/closed_loop.yaml", "--out", str(out),
             *(f"--set={setting}" for setting in SIM_ROADS_RECIPE)])  # fmt: skip
        return out / "best"
    out = ROOT / "runs" / "ship" / "udacity_hmb3"
    run([sys.executable, "-m", "benchmarks.udacity_ch2", "--data", UDACITY, "--models", "binary_sign", "--seeds", "1",
         "--name", "ship_udacity_hmb3", "--out", str(out)])  # fmt: skip
    return out / "models" / "binary_sign_s0" / "best"


def accuracy(predictor: SteeringPredictor, name: str) -> dict:
    """Test RMSE with a bootstrap 95 % interval over frames, and what predicting the training mean scores."""
    spec = SHIPPED[name]
    block = {"block": "test"} if name == "udacity_hmb3" else {}
    source = open_source(spec_from_text(spec["eval_data"]))
    frames = predictor.frames(source, str(ROOT / "data_out" / "cache"), None, **block, blocks=spec.get("blocks"))
    steering, _ = predictor.predict_batch(frames.images)
    squared = (np.asarray(steering) - frames.targets) ** 2
    draws = np.random.default_rng(0).integers(0, len(squared), (2000, len(squared)))
    low, high = np.sqrt(np.percentile(squared[draws].mean(axis=1), [2.5, 97.5]))
    return {"frames": len(squared), "rmse": float(np.sqrt(squared.mean())), "rmse_ci": [float(low), float(high)],
            "unit": predictor.info.steering_unit}  # fmt: skip


def explanations(checkpoint: Path, name: str, out: Path) -> dict:
    spec = SHIPPED[name]
    run([sys.executable, "evaluation/evaluate.py", "--checkpoint", f"{name}={checkpoint}", "--data",
         spec["eval_data"], *spec["eval_args"], "--methods", "attention,random", "--frames", "100", "--no-insertion",
         "--sanity-frames", "0", "--no-uniform", "--out", str(out)])  # fmt: skip
    attention = read_json(out / "results.json")["models"][name]["methods"]["attention"]
    return {"frames": attention["frames"], "deletion_over_random": attention["vs_random"],
            "road_morf_over_lerf": attention["road_morf_over_lerf"]}  # fmt: skip


def closed_loop(predictor: SteeringPredictor, out: Path, jobs: int) -> dict:
    sweep = run_sweep({"model": predictor.checkpoint}, tracks=2, length_m=150.0, jobs=jobs, cache=out / "drives")
    drive = merged_summary(drive_predictor(predictor, [generate_track(HELD_OUT_SEEDS[0], 1000.0)], SimConfig(), 15.0))
    return {
        "breaking_point": {axis: by["model"] for axis, by in sweep.breaking_point.items()},
        "pursuit_breaking_point": {axis: by["pursuit"] for axis, by in sweep.breaking_point.items()},
        "sweep": f"{sweep.tracks_per_level} held-out roads x {sweep.track_length_m:g} m per level",
        "drive_1km_15ms": {key: float(drive[key]) for key in ("autonomy", "interventions", "mean_abs_offset_m")},
    }


def evaluate(name: str, checkpoint: Path, jobs: int) -> dict:
    out = ROOT / "runs" / "ship" / f"{name}_eval"
    predictor = SteeringPredictor(checkpoint, "cpu")
    figures = {"sha256": predictor.info.sha256, "accuracy": accuracy(predictor, name),
               "explanations": explanations(checkpoint, name, out / "explain")}  # fmt: skip
    if name == "sim_roads":
        figures["closed_loop"] = closed_loop(predictor, out, jobs)
    return figures


def interval(value: list) -> str:
    return f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"


def card(name: str, checkpoint: Path, figures: dict) -> str:
    """The model card: what it is, what it was trained on and how, what it scores, where it breaks, its limits."""
    info, spec = read_info(checkpoint), SHIPPED[name]
    loop = info.training.get("closed_loop")
    recipe = (f"closed loop: {loop['recipe']}, {loop['rounds']} rounds after the expert's, "
              f"{', '.join(f'{k} seed {v}' for k, v in loop['seeds'].items())}"
              if loop else f"static frames, seed {info.training.get('seed', 0)}")  # fmt: skip
    acc, expl = figures["accuracy"], figures["explanations"]
    lines = [
        f"# {name}: model card",
        "",
        f"{summary(name, figures)}",
        "",
        "| | |",
        "|---|---|",
        f"| model | {info.model.variant}, {info.model.bits}-bit quantizer, input {info.model.input_height}x"
        f"{info.model.input_width} |",
        f"| input | {', '.join(f'{k} {v}' for k, v in info.preprocessing.cache_key().items())}; camera "
        f"{info.camera.describe() if info.camera else 'any'} |",
        f"| output | steering in {info.steering_unit}, positive {'left' if info.positive_is_left else 'right'} |",
        f"| data | {spec['data']} |",
        f"| recipe | {recipe} |",
        f"| weights SHA-256 | `{info.sha256}` |",
        "",
        "## Figures",
        "",
        f"- Test RMSE {acc['rmse']:.4f} [{acc['rmse_ci'][0]:.4f}, {acc['rmse_ci'][1]:.4f}] ({acc['unit']}, "
        f"{acc['frames']} held-out frames, bootstrap 95 %).",
        f"- Attention deletion AUC over its own random order: {interval(expl['deletion_over_random'])} (above 1: "
        f"deleting what it points at hurts more than deleting at random); ROAD most- over least-relevant-first: "
        f"{interval(expl['road_morf_over_lerf'])}; {expl['frames']} frames.",
    ]
    if "closed_loop" in figures:
        loop_figures = figures["closed_loop"]
        drive = loop_figures["drive_1km_15ms"]
        broke = ", ".join(f"{axis} {'never' if value is None else f'{value:g}'}"
                          for axis, value in loop_figures["breaking_point"].items())  # fmt: skip
        lines += [
            f"- Closed loop, 1 km of held-out road 1000 at 15 m/s: autonomy {drive['autonomy']:.1%}, "
            f"{drive['interventions']:.0f} interventions, mean |offset| {drive['mean_abs_offset_m']:.3f} m.",
            f"- Breaking points (first level under 99 % autonomy; never: not up to the sweep's last level; "
            f"{loop_figures['sweep']}): {broke}.",
        ]
    lines += ["", "## Intended use", "", spec["intended"] + ". Not for a real vehicle on a public road.", "",
              "## Limits", "", *[f"- {limit}" for limit in LIMITS[name]], "", "## Licence", "", LICENCE[name], "",
              f"Figures: `benchmarks/results/shipped_models.json`; retrain: `python -m training.ship_models --only "
              f"{name}` (`make models`: all of them)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def summary(name: str, figures: dict) -> str:
    """The card's first line, which the node logs."""
    acc, expl = figures["accuracy"], figures["explanations"]
    text = (f"{SHIPPED[name]['what']}; test RMSE {acc['rmse']:.4f} {acc['unit']}, deletion / own random "
            f"{expl['deletion_over_random'][0]:.2f}")  # fmt: skip
    if "closed_loop" in figures:
        text += f", {figures['closed_loop']['drive_1km_15ms']['autonomy']:.0%} autonomy on 1 km of a held-out road"
    return text


def install(name: str, checkpoint: Path, figures: dict) -> None:
    """models/<name>/ and the manifest entry naming every file's SHA-256."""
    folder = MODELS / name
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        source = checkpoint.with_name(checkpoint.name + suffix)
        if source.resolve() != (folder / f"model{suffix}").resolve():
            shutil.copyfile(source, folder / f"model{suffix}")
    write_text(folder / "MODEL_CARD.md", card(name, folder / "model", figures))
    listing = read_json(MODELS / MANIFEST) or {"default": "sim_roads", "models": {}}
    files = [f"{name}/model.safetensors", f"{name}/model.json", f"{name}/MODEL_CARD.md"]
    listing["models"][name] = {"checkpoint": f"{name}/model", "card": f"{name}/MODEL_CARD.md",
                               "summary": summary(name, figures),
                               "sha256": {f: file_sha256(MODELS / f) for f in files}}  # fmt: skip
    write_json(MODELS / MANIFEST, listing)


def compare(name: str, checkpoint: Path, figures: dict, recorded: dict) -> None:
    """How far the retrained model is from the shipped one: weights, and each recorded figure."""
    shipped = MODELS / name / "model"
    if not shipped.with_suffix(".safetensors").is_file():
        print(f"{name}: nothing shipped yet to compare with")
        return
    mine, theirs = load_checkpoint(checkpoint)[0].state_dict(), load_checkpoint(shipped)[0].state_dict()
    largest = max(float((mine[k].float() - theirs[k].float()).abs().max()) for k in mine)
    print(f"{name}: largest weight difference to the shipped model {largest:.3g}")
    old = recorded.get(name, {})
    for path in (("accuracy", "rmse"), ("explanations", "deletion_over_random")):
        a, b = old.get(path[0], {}).get(path[1]), figures[path[0]][path[1]]
        print(f"  {'.'.join(path)}: shipped {a}, retrained {b}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(SHIPPED), action="append", help="one model (repeatable; default: "
                        "sim_roads, and udacity_hmb3 where data/udacity is)")  # fmt: skip
    parser.add_argument("--install", action="store_true", help="replace models/<name> and the manifest entry")
    parser.add_argument("--checkpoint", help="evaluate and install this checkpoint instead of retraining (one --only)")
    parser.add_argument("--jobs", type=int, default=2, help="simulator drives at once")
    parser.add_argument("--cards", action="store_true", help="only rewrite the cards and the manifest from the "
                        "recorded figures (benchmarks/results/shipped_models.json)")  # fmt: skip
    args = parser.parse_args(argv)
    recorded = (read_json(RESULTS) or {}).get("models", {})
    if args.cards:  # from the recorded figures: every recorded model by default, no data needed
        names = args.only or list(recorded)
        unrecorded = [name for name in names if name not in recorded]
        if unrecorded:
            parser.error(f"--cards: no figures recorded for {', '.join(unrecorded)} in {RESULTS.relative_to(ROOT)}")
        for name in names:
            install(name, MODELS / name / "model", recorded[name])
        return 0
    names = args.only or ["sim_roads"] + (["udacity_hmb3"] if (ROOT / UDACITY).is_dir() else [])
    if args.checkpoint and len(names) != 1:
        parser.error(f"--checkpoint evaluates one model: name it with one --only (got {', '.join(names)})")
    results = {}
    for name in names:
        checkpoint = Path(args.checkpoint) if args.checkpoint else train(name)
        figures = evaluate(name, checkpoint, args.jobs)
        compare(name, checkpoint, figures, recorded)
        if args.install:
            install(name, checkpoint, figures)
            results[name] = figures
    if args.install:  # the figures of models not rerun here stay as recorded, whoever wrote them meanwhile
        results = {**(read_json(RESULTS) or {}).get("models", {}), **results}
        record(
            "shipped_models",
            {name: summary(name, figures) for name, figures in results.items()},
            models=results,
            default=read_json(MODELS / MANIFEST)["default"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
