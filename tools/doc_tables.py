"""The tables of README.md and docs/*.md that come from the code and the recorded results.

  python -m tools.doc_tables           # rewrite every generated block, from the repository root
  python -m tools.doc_tables --check   # exit 1, naming the blocks that differ (test/test_docs.py)

A block is the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. Names:
`params` (qattn_ros.rules.steering_params.PARAMS), `launch:steering|replay_eval|sim` and `launch_summary`
(qattn_ros.ros.launch_rules), `topics:<node>` (qattn_ros.rules.interfaces), and `results:<table>` from
benchmarks/results/*.json (each says which file, command, date and machine it comes from).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from qattn_ros.ros import launch_rules
from qattn_ros.rules.interfaces import NODES
from qattn_ros.rules.steering_params import PARAMS
from tools.doc_format import LINK, RESULTS, bound, literal, load, ratio, source_line, table

BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w:.-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


# -- the steering node -----------------------------------------------------------------------------------------------
def params_table(root: Path) -> str:
    rows = []
    for name, spec in PARAMS.items():
        allowed = " | ".join(spec.choices) if spec.choices else (
            f"{bound(spec.low)} … {bound(spec.high)}" if spec.low is not None else "")  # fmt: skip
        rows.append((f"`{name}`", literal(spec.default), allowed, "yes" if spec.runtime else "", spec.description))
    return table(("parameter", "default", "range / choices", "runtime", "description"), rows)


def topics_table(root: Path, node: str) -> str:
    rows = [(f"`{t.name}`", t.direction, f"`{t.type}`", t.qos, t.description) for t in NODES[node].topics]
    return table(("topic / service", "", "type", "QoS", "description"), rows)


def topics_brief(root: Path, node: str) -> str:
    """Topic, direction, type and QoS, without the descriptions (docs/node.md has those)."""
    rows = [(f"`{t.name}`", t.direction, f"`{t.type}`", t.qos) for t in NODES[node].topics if not t.builtin]
    return table(("topic / service", "", "type", "QoS"), rows)


# -- launch files ----------------------------------------------------------------------------------------------------
def _graph(file: str, root: Path) -> tuple[list[launch_rules.Argument], dict[str, str], dict[str, str]]:
    """A launch file's arguments, what it forwards to steering.launch.py, and what it fixes there."""
    if file == "steering":
        params = {a.name for a in launch_rules.steering_parameters(root / launch_rules.PARAMS_FILE)}
        own = [a for a in launch_rules.steering_arguments(root) if a.name not in params]
        return own, {}, {}
    if file == "replay_eval":
        return launch_rules.REPLAY_ARGUMENTS, launch_rules.REPLAY_STEERING, launch_rules.REPLAY_STEERING_FIXED
    if file == "sim":
        return launch_rules.SIM_ARGUMENTS, launch_rules.SIM_STEERING, launch_rules.SIM_STEERING_FIXED
    raise KeyError(f"no launch file {file!r}")


def launch_table(root: Path, file: str) -> str:
    arguments, forwarded, fixed = _graph(file, root)
    rows = []
    for a in arguments:
        sets = [f"{a.node} `{a.param}`"] if a.node else []
        sets += [f"{launch_rules.STEERING_NODE} `{steering}`" for steering, own in forwarded.items()
                 if own == a.name and steering != "rviz"]  # fmt: skip
        if a.name == "rviz":
            sets = ["starts RViz (config/attention.rviz)"]
        default = "(required)" if a.default is None else a.default.replace(str(root), "<share>") or "–"
        rows.append((f"`{a.name}`", default, ", ".join(sets) or "the launch file", a.description))
    if file == "steering":
        every = "every parameter of the node (table above), passed only when given, after `params_file`"
        rows.append(("`<parameter>`", "–", f"{launch_rules.STEERING_NODE} `<parameter>`", every))
    text = table(("argument", "default", "sets", "description"), rows)
    if fixed:
        text += f"\n\nSet on {launch_rules.STEERING_NODE} by this file: " + ", ".join(
            f"`{k}:={v}`" for k, v in fixed.items()) + "."  # fmt: skip
    return text


def launch_summary(root: Path) -> str:
    rows = []
    for file in ("steering", "replay_eval", "sim"):
        arguments, _, _ = _graph(file, root)
        required = [f"`{a.name}`" for a in arguments if a.default is None] or ["none"]
        optional = [a.name for a in arguments if a.default is not None]
        if file == "steering":
            optional.append("every node parameter")
        rows.append((f"`{file}.launch.py`", ", ".join(required), ", ".join(optional)))
    return table(("launch file", "required", "optional"), rows)


# -- results ---------------------------------------------------------------------------------------------------------
MAIN_ROWS = (("kim_canny", "attention"), ("binary_sign", "attention"), ("quant_sign_b2_p0.5", "attention"),
             ("kim_canny", "integrated_gradients"))  # fmt: skip


def _method(result: dict, variant: str, method: str) -> dict:
    return result["variants"][variant]["methods"][method]


def _normalized(m: dict, key: str) -> str:
    """A sensitivity-normalized ratio to kim_canny with its interval, or – where the run predates it."""
    value = m.get(key)
    return ratio(value["vs_kim_canny"], value["vs_kim_canny_ci"]) if isinstance(value, dict) else "–"


def headline_table(root: Path) -> str:
    """The synthetic headline: the run of the headline models alone (headline_main) where there is one."""
    name = "headline_main" if load(root, "headline_main") else "headline"
    result = load(root, name)
    if result is None:
        return "Not recorded yet: `python -m benchmarks.headline --jobs 2` writes `benchmarks/results/headline.json`."
    rows = []
    for variant, method in MAIN_ROWS:
        if method not in result["variants"][variant]["methods"]:
            continue
        m, v = _method(result, variant, method), result["variants"][variant]
        rows.append((variant, method, m["seeds"], _normalized(m, "deletion_over_random"),
                     _normalized(m, "road_morf_over_lerf"), ratio(m["deletion_auc"]["vs_kim_canny"],
                     m["deletion_auc"]["vs_kim_canny_ci"]), ratio(m["road_morf_auc"]["vs_kim_canny"],
                     m["road_morf_auc"]["vs_kim_canny_ci"]), f"{m['sanity_rho']:.2f}",
                     f"{v['rmse_ratio']:.2f}"))  # fmt: skip
    header = ("model", "map", "seeds", "deletion / own random × kim_canny [95 % CI] ↑",
              "ROAD MoRF / LeRF × kim_canny [95 % CI] ↑", "deletion (raw) × kim_canny", "ROAD MoRF (raw) × kim_canny",
              "sanity ρ ↓", "RMSE × kim_canny")  # fmt: skip
    s = result["settings"]
    return (table(header, rows) + f"\n\n{source_line(name, result)} {s['train_frames']:,} training frames, "
            f"{s['epochs']} epochs, {s['test_frames']} held-out frames, {s['seeds']} seeds per variant.")  # fmt: skip


def real_frames_table(root: Path, name: str = "udacity_ch2") -> str:
    """The claim on real camera frames: per model, accuracy and both faithfulness figures, normalized and raw."""
    result = load(root, name)
    if result is None:
        return f"Not recorded yet: `python -m benchmarks.{name} --jobs 2 --record` writes `{RESULTS / name}.json`."
    split, rows = result["splits"], []
    for variant, v in result["variants"].items():
        m = v["methods"]["attention"]
        rows.append((variant, v["seeds"], f"{v['rmse_mean']:.4f} (×{v['rmse_ratio']:.2f})",
                     _normalized(m, "deletion_over_random"), _normalized(m, "road_morf_over_lerf"),
                     ratio(m["deletion_auc"]["vs_kim_canny"], m["deletion_auc"]["vs_kim_canny_ci"]),
                     ratio(m["road_morf_auc"]["vs_kim_canny"], m["road_morf_auc"]["vs_kim_canny_ci"]),
                     ratio(m["insertion_auc"]["vs_kim_canny"], m["insertion_auc"]["vs_kim_canny_ci"]),
                     f"{m['sanity_rho']:.2f}"))  # fmt: skip
    header = ("model", "seeds", f"test RMSE, {split['unit']} (× kim_canny)", "deletion / own random × kim_canny ↑",
              "ROAD MoRF / LeRF × kim_canny ↑", "deletion (raw) × kim_canny", "ROAD MoRF (raw) × kim_canny",
              "insertion × kim_canny ↓", "sanity ρ ↓")  # fmt: skip
    blocks = split["per_block"]
    said = ", ".join(f"{b} {blocks[b]['frames']:,} frames ({blocks[b]['duration_s']:.0f} s, steering variance "
                     f"{blocks[b]['steering_variance']:.4f})" for b in split["blocks"]["order"])  # fmt: skip
    s = result["settings"]
    return (table(header, rows) + f"\n\nTime blocks in order: {said}; at least {split['smallest_gap_s']:.1f} s "
            f"between blocks. Predicting the training mean on the test block: RMSE "
            f"{blocks['test']['train_mean_rmse']:.4f}. {s['test_frames']} evenly spaced test frames, {s['epochs']} "
            "epochs, 95 % hierarchical bootstrap intervals over seeds and frames. "
            f"{source_line(name, result)}")  # fmt: skip


def headline_full_table(root: Path, name: str = "headline") -> str:
    result = load(root, name)
    if result is None:
        return "Not recorded yet."
    rows = []
    variants = ("kim_canny", "binary_sign", "quant_sign_b2_p0.5")
    methods = [(v, m) for v in variants for m in result["variants"][v]["methods"] if m != "random"]

    def auc(m: dict, key: str) -> str:
        a = m.get(key)
        return f"{a['mean']:.4f} · ×{ratio(a['vs_kim_canny'], a['vs_kim_canny_ci'])}" if a else "–"

    for variant, method in methods:
        m, v = _method(result, variant, method), result["variants"][variant]
        rmse = f"{v['rmse_mean']:.4f} [{v['rmse_ci'][0]:.4f}, {v['rmse_ci'][1]:.4f}] (×{v['rmse_ratio']:.2f})"

        uniform = f" ({100 * m['sanity_uniform']:.0f} % uniform)" if m.get("sanity_uniform") else ""
        sanity = f"{m['sanity_rho']:.2f} [{m['sanity_rho_ci'][0]:.2f}, {m['sanity_rho_ci'][1]:.2f}]{uniform}"
        rows.append((variant, method, m["seeds"], _normalized(m, "deletion_over_random"),
                     _normalized(m, "road_morf_over_lerf"), auc(m, "deletion_auc"), auc(m, "road_morf_auc"),
                     auc(m, "road_lerf_auc"), auc(m, "insertion_auc"), sanity,
                     f"{v['uniform_shift_over_rmse']:.2f}" if method == "attention" else "–",
                     f"{m['mask_mass_ratio']:.2f}", f"{m['pointing']:.2f}", rmse))  # fmt: skip
    header = ("model", "map", "seeds", "deletion / own random × kim_canny ↑", "ROAD MoRF / LeRF × kim_canny ↑",
              "deletion onto the mean ↑ (AUC · × kim_canny [95 % CI])", "ROAD MoRF ↑",
              "ROAD LeRF ↓", "insertion ↓", "sanity ρ ↓", "uniform-attention shift / RMSE", "mass on mask (× area)",
              "pointing", "RMSE [95 % CI over seeds] (× kim_canny)")  # fmt: skip
    return table(header, rows) + f"\n\n{source_line(name, result)}"


def _morf_over_lerf(m: dict) -> str:
    value = m["road_morf_over_lerf"]
    return f"{value['mean'] if isinstance(value, dict) else value:.2f}"


def pareto_table(root: Path) -> str:
    result = load(root, "headline")
    if result is None:
        return "Not recorded yet."
    rows = []
    for p in result["pareto"]:
        m = _method(result, p["name"], "attention")
        rows.append((p["name"], f"{p['rmse_ratio']:.2f}", ratio(p["deletion_ratio"], p["deletion_ci"]),
                     ratio(p["road_ratio"], p["road_ci"]), _morf_over_lerf(m),
                     f"{p['sanity_rho']:.2f}" + (f" ({100 * m['sanity_uniform']:.0f} % uniform)"
                                                 if m.get("sanity_uniform") else ""),
                     "yes" if p["front"] else ""))  # fmt: skip
    header = ("configuration", "RMSE × kim_canny", "deletion × kim_canny [95 % CI]",
              "ROAD MoRF × kim_canny [95 % CI]", "ROAD MoRF / LeRF", "sanity ρ", "on the front")  # fmt: skip
    best = result["summary"].get("best_grid_point", "")
    return table(header, rows) + f"\n\nBest grid point: `{best}`. {source_line('headline', result)}"


def _loaded_demo(root: Path) -> str:
    """The demo's time beside two busy processes, and whether that run made the same summary.md."""
    loaded = load(root, "demo_time_hogs2")
    if loaded is None:
        return ""
    s = loaded["summary"]
    same = "the same summary.md" if s["same_as_recorded_demo"] else "another summary.md (not reproduced)"
    return (f" ({s['wall_min']:.1f} min beside two busy processes in a fresh clone, {loaded['date'][:10]}: "
            f"{same}, [demo_time_hogs2.json]({LINK}{RESULTS}/demo_time_hogs2.json))")  # fmt: skip


def demo_table(root: Path) -> str:
    result = load(root, "demo")
    if result is None:
        return (
            "Not recorded yet for this version of the demo: `.venv/bin/python training/demo.py --record` "
            "writes `benchmarks/results/demo.json`; `python -m tools.doc_tables` puts its table here."
        )

    def cell(value: float | None, text: str) -> str:
        return "–" if value is None else text.format(value)

    rows = [(r["variant"], cell(r["val_rmse"], "{:.4f}"), f"{r['test_rmse']:.4f}", f"{r['test_mae']:.4f}",
             f"{r['mean_baseline_rmse']:.4f}", f"{r['mask_mass_ratio']:.2f}",
             cell(r["late_val_swing"] and 100 * r["late_val_swing"], "{:.1f} %"))
            for r in result["rows"] if r["seed"] == 0]  # fmt: skip
    header = ("model", "val RMSE", "test RMSE", "test MAE", "predict-the-mean RMSE",
              "attention on relevant pixels (× area)", "largest val RMSE swing after epoch 3")  # fmt: skip
    s = result["summary"]
    return (table(header, rows) + f"\n\nClosed loop, {s['driver']} on 1 km of a held-out road at 15 m/s: autonomy "
            f"{100 * s['autonomy']:.0f} %, {s['interventions']} interventions, mean |offset| "
            f"{s['mean_abs_offset_m']:.3f} m, max {s['max_abs_offset_m']:.2f} m"
            + (f"; the shipped model: autonomy {100 * s['shipped_autonomy']:.0f} %, mean |offset| "
               f"{s['shipped_mean_abs_offset_m']:.3f} m" if "shipped_autonomy" in s else "")
            + f". Whole run {s['wall_s'] / 60:.1f} min on {s.get('threads', 'all')} threads" + _loaded_demo(root)
            + (f"; summary.md's SHA-256 begins `{s['summary_sha256'][:16]}`" if "summary_sha256" in s else "")
            + ". "
            f"{source_line('demo', result)}")  # fmt: skip


# (results file, summary key path, what it is, target or "")
FIGURES = (
    ("headline", "deletion_auc_ratio", "binary_sign deletion AUC × kim_canny (3 seeds)", "≥ 1.5"),
    ("headline", "road_ratio", "binary_sign ROAD MoRF AUC × kim_canny", "≥ 1.5"),
    ("headline", "rmse_ratio", "binary_sign RMSE × kim_canny", "≤ 1.05"),
    ("headline", "sanity_rho", "binary_sign sanity ρ (all layers randomized)", "≤ 0.5"),
    ("train_throughput", "images_per_s.binary_sign", "training, binary_sign, images/s", ""),
    ("train_throughput", "data_share", "data loading share of a training step", "< 0.1"),
    ("data_throughput", "bag_fps", "ROS 1 bag (640×480 JPEG) decode, frames/s", ""),
    ("data_throughput", "cache_vs_jpeg", "cache reads × JPEG decoding", ""),
    ("eval_throughput", "batched_fps", "deletion curves (51 forwards), frames/s, batched", ""),
    ("eval_throughput", "batched_vs_loop", "batched × per-step loop", "≥ 10 (a GPU figure)"),
    ("node_latency", "p99_ms", "node, torch: camera stamp → last output p99, ms (640×480, 30 Hz)", ""),
    ("node_latency", "onnxruntime_p99_ms", "node, onnxruntime: the same p99, ms", ""),
    ("node_latency", "ratio_p99", "node, torch: (p99 − relay p99) / model p99", "≤ 2"),
    ("node_latency", "onnxruntime_ratio_p99", "node, onnxruntime: (p99 − relay p99) / model p99", "≤ 2"),
    ("node_latency", "dropped", "frames dropped (of `frames`)", "0"),
    ("node_latency", "frames", "frames sent", ""),
    ("inference_backends", "ort_vs_torch_forward", "ONNX Runtime × torch, bare forward p50, 1 thread", "≥ 1.4"),
    ("inference_backends", "max_abs_diff", "largest output difference, ONNX Runtime vs torch", "≤ 1e-5"),
    ("launch_pair", "default_frames_received_ratio", "launch pair: frames answered / published, default range",
     "≥ 0.95"),
    ("launch_pair", "LOCALHOST_frames_received_ratio", "launch pair: the same under LOCALHOST", "≥ 0.95"),
    ("launch_pair", "default_watchdog_stops", "launch pair: watchdog stops while the camera ran", "0"),
    ("replay_throughput", "replay_vs_offline", "lockstep replay × offline evaluator, frames/s", "≥ 0.8"),
    ("replay_throughput", "localhost_ratio", "the same under LOCALHOST", "≥ 0.8"),
    ("replay_throughput", "loaded_ratio", "the same with a CPU hog on one core", "≥ 0.5"),
    ("replay_throughput", "resent", "frames re-sent", "0"),
    ("closed_loop", "sim_fps", "simulator + node, lockstep steps/s", "≥ 20"),
    ("closed_loop", "mean_abs_offset_m.quant_sign", "nominal sweep level: mean |offset| m, quant_sign", ""),
    ("closed_loop", "mean_abs_offset_m.kim_canny", "nominal sweep level: mean |offset| m, kim_canny", ""),
    ("closed_loop", "faithfulness_rho", "Spearman ρ, attention deletion ratio vs closed-loop robustness", ""),
    ("closed_loop", "faithfulness_models", "checkpoints in that correlation", ""),
    ("camera_geometry", "rmse_ratio_4_3", "RMSE on 4:3 frames × on the trained 2:1 (crop at the horizon)", "≤ 1.5"),
    ("camera_geometry", "rmse_ratio_16_9", "the same on 16:9 frames", "≤ 1.5"),
    ("camera_geometry", "rmse_ratio_4_3_squashed", "4:3 squashed instead of cropped", ""),
    ("udacity_pipeline", "val_rmse", "HMB-style bag → cache → 2-rank DDP: val RMSE, rad", ""),
    ("udacity_pipeline", "mean_baseline_rmse", "predict-the-mean RMSE, rad", ""),
    ("demo", "test_rmse.binary_sign", "make demo: binary_sign test RMSE (simulator units)", ""),
    ("demo", "test_rmse.kim_canny", "make demo: kim_canny test RMSE (simulator units)", ""),
    ("demo", "autonomy", "make demo: closed-loop autonomy, 1 km held-out road", ""),
    ("demo", "mean_abs_offset_m", "make demo: closed-loop mean |offset| m", ""),
    ("demo", "wall_s", "make demo: whole run, s", ""),
    ("demo_time_hogs2", "wall_min", "make demo beside two busy processes, min", ""),
    ("demo_time_hogs2", "same_as_recorded_demo", "that run's summary.md byte-identical to the recorded demo's", "True"),
    ("suite_time", "wall_min", "make test on idle cores, min", "≤ 45"),
    ("suite_time_hogs2", "wall_min", "make test beside two busy processes, min", ""),
    ("evaluate_time", "wall_s", "README's evaluate.py --frames 100 (2 models × 4 methods), s", ""),
    ("evaluate_time", "random_vs_attention.binary_sign", "random × attention, s per frame, binary_sign", "≤ 1.5"),
    ("evaluate_time", "random_vs_attention.kim_canny", "random × attention, s per frame, kim_canny", "≤ 1.5"),
)  # fmt: skip


def _value(summary: dict, path: str) -> object:
    value: object = summary
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _number(value: object) -> str:
    if isinstance(value, float):
        if value and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _results_files(root: Path, name: str) -> list[Path]:
    """name.json and its runs on other hardware (name.<gpu>.json)."""
    return sorted((root / RESULTS).glob(f"{name}.json")) + sorted((root / RESULTS).glob(f"{name}.*.json"))


def benchmarks_table(root: Path) -> str:
    rows = []
    for name, path, what, target in FIGURES:
        for file in _results_files(root, name):
            result = json.loads(file.read_text())
            value = _value(result["summary"], path)
            if value is not None:
                rows.append((f"[`{file.name}`]({LINK}{file.relative_to(root).as_posix()})", what,
                             _number(value), target, result["date"][:10], result["machine"]))  # fmt: skip
    return table(("file", "figure", "value", "target", "date", "machine"), rows)


def commands_table(root: Path) -> str:
    rows = []
    for file in sorted((root / RESULTS).glob("*.json")):
        result = json.loads(file.read_text())
        rows.append((f"`{file.name}`", f"`{result['command']}`"))
    return table(("file", "recorded by"), rows)


CAMERA_COLUMNS = ("camera", "qos", "format", "size", "rate_hz", "discovery_range", "load", "frames_received_ratio",
                  "answered_ratio", "watchdog_stops", "p99_ms")  # fmt: skip


def cameras_table(root: Path, name: str = "launch_pair") -> str:
    result = load(root, name)
    cells = (result or {}).get("foreign_cameras")
    if not cells:
        return (f"Not measured yet: `python -m benchmarks.launch_pair --foreign` records cameras that use no code of "
                f"this package, per QoS, format, size, discovery range and load (`{name}.json`).")  # fmt: skip
    rows = [tuple(_number(c.get(k, "–")) for k in CAMERA_COLUMNS) for c in cells]
    return table(CAMERA_COLUMNS, rows) + f"\n\n{source_line(name, result)}"


def cameras_summary(root: Path) -> str:
    result = load(root, "launch_pair")
    cells = (result or {}).get("foreign_cameras")
    if not cells:
        return "Cameras of other packages: not measured yet (`python -m benchmarks.launch_pair --foreign`)."
    qos = sorted({c["qos"] for c in cells})
    low = min(c["frames_received_ratio"] for c in cells)
    stops = sum(c["watchdog_stops"] for c in cells)
    p99 = max(c["p99_ms"] for c in cells)
    more = f"[docs/node.md]({LINK}docs/node.md#cameras-and-qos)"
    return (f"Measured with {len({c['camera'] for c in cells})} plain rclpy cameras ({', '.join(qos)}; "
            f"{', '.join(sorted({c['size'] for c in cells}))}) under both discovery ranges, quiet and loaded: at least "
            f"{100 * low:.1f} % of frames received in every cell, {stops} watchdog stops, p99 camera stamp → "
            f"command ≤ {p99:.0f} ms ({result['date'][:10]}; {more}).")  # fmt: skip


GENERATORS: dict[str, Callable[..., str]] = {
    "params": params_table,
    "topics": topics_table,
    "topics_brief": topics_brief,
    "launch": launch_table,
    "launch_summary": launch_summary,
    "results:headline": headline_table,
    "results:headline_full": headline_full_table,
    "results:pareto": pareto_table,
    "results:udacity_ch2": real_frames_table,
    "results:headline_main": lambda root: headline_full_table(root, "headline_main"),
    "results:demo": demo_table,
    "results:benchmarks": benchmarks_table,
    "results:commands": commands_table,
    "results:cameras": cameras_table,
    "results:cameras_summary": cameras_summary,
    "results:cameras_encodings": lambda root: cameras_table(root, "launch_pair_encodings"),
}


def render(name: str, root: Path) -> str:
    """The text of block `name` (`kind` or `kind:argument`)."""
    if name in GENERATORS:
        return GENERATORS[name](root)
    kind, _, argument = name.partition(":")
    if kind in ("topics", "topics_brief", "launch") and argument:
        return GENERATORS[kind](root, argument)
    raise KeyError(f"unknown generated block {name!r} (known: {', '.join(GENERATORS)})")


def regenerate(text: str, root: Path, to_root: str = "") -> tuple[str, list[str]]:
    """The text with every block rewritten, and the names of the blocks that changed; `to_root`: the path from the
    document to the repository root ("" for README.md, "../" for docs/*.md)."""
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        body = render(match["name"], root).strip().replace(LINK, to_root) + "\n"
        if body != match["body"]:
            changed.append(match["name"])
        return f"{match[1]}{body}{match[4]}"

    return BLOCK.sub(replace, text), changed


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    parser.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    stale = []
    for path in documents(root):
        text = path.read_text()
        new, changed = regenerate(text, root, "../" * (len(path.relative_to(root).parts) - 1))
        stale += [f"{path.relative_to(root)}: {name}" for name in changed]
        if changed and not args.check:
            path.write_text(new)
    if stale:
        verb = "differ from the code and results (run python -m tools.doc_tables)" if args.check else "rewritten"
        print(f"generated blocks {verb}:\n  " + "\n  ".join(stale), file=sys.stderr if args.check else sys.stdout)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
