"""README.md and docs/: generated tables equal what the code and results make; commands, links and figures exist.

Runs no ROS and trains nothing: the commands are checked against the files, modules, console scripts, make
targets, launch arguments and node parameters they name, and the cheap ones are run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from qattn_ros.ros import launch_rules
from qattn_ros.rules import steering_params
from qattn_ros.rules.interfaces import NODES
from tools import doc_tables

ROOT = Path(__file__).resolve().parents[1]
# the pages this check covers (docs/closed_loop_training*.md belong to the closed-loop training work)
OWNED = ["README.md", *(f"docs/{n}.md" for n in ("install", "node", "replay", "simulator", "results", "benchmarks",
                                                  "architecture", "method", "evaluation", "interfaces"))]  # fmt: skip
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def text(name: str) -> str:
    return (ROOT / name).read_text()


# -- generated tables ------------------------------------------------------------------------------------------------
def test_every_generated_block_matches_the_code_and_the_results() -> None:
    stale = []
    for path in doc_tables.documents(ROOT):
        to_root = "../" * (len(path.relative_to(ROOT).parts) - 1)
        _, changed = doc_tables.regenerate(path.read_text(), ROOT, to_root)
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
    assert not stale, f"run `python -m tools.doc_tables`: {stale}"


def test_blocks_are_closed_and_known() -> None:
    for name in OWNED:
        body = text(name)
        opened = re.findall(r"<!-- generated:([\w:.-]+) -->", body)
        matched = [m["name"] for m in doc_tables.BLOCK.finditer(body)]
        assert opened == matched, f"{name}: a generated block without its end marker"
        for block in matched:
            doc_tables.render(block, ROOT)  # raises on an unknown name


def test_a_default_changed_without_regenerating_fails(monkeypatch) -> None:
    spec = steering_params.PARAMS["cruise_speed"]
    monkeypatch.setitem(steering_params.PARAMS, "cruise_speed", dataclasses.replace(spec, default=3.5))
    _, changed = doc_tables.regenerate(text("docs/node.md"), ROOT, "../")
    assert "params" in changed


def test_a_new_result_without_regenerating_fails(tmp_path) -> None:
    results = tmp_path / doc_tables.RESULTS
    results.mkdir(parents=True)
    for file in (ROOT / doc_tables.RESULTS).glob("*.json"):
        (results / file.name).write_text(file.read_text().replace('"rmse_ratio": 1.024', '"rmse_ratio": 1.5', 1))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "steering_node.yaml").write_text(text("config/steering_node.yaml"))
    _, changed = doc_tables.regenerate(text("docs/benchmarks.md"), tmp_path, "../")
    assert "results:benchmarks" in changed


def test_the_node_interfaces_are_the_nodes_topics() -> None:
    """Each declared topic is named in its node's source, and each topic the source creates is declared."""
    for node in NODES.values():
        source = (ROOT / (node.module.replace(".", "/") + ".py")).read_text()
        declared = {t.name for t in node.topics}
        for topic in node.topics:
            if not topic.builtin:
                assert f'"{topic.name}"' in source, f"{node.name}: {topic.name} is not in {node.module}"
                assert topic.type.rsplit("/", 1)[1] in source, f"{node.name}: {topic.type} is not in {node.module}"
        created = re.findall(r"create_(?:publisher|subscription|service)\(\s*[^,]+,\s*\"([^\"]+)\"", source)
        assert set(created) <= declared, f"{node.name}: {set(created) - declared} not in qattn_ros/rules/interfaces.py"


# -- the README's shape ----------------------------------------------------------------------------------------------
def test_readme_is_short_and_in_order() -> None:
    lines = text("README.md").splitlines()
    assert len(lines) <= 300
    first_launch = next(i for i, line in enumerate(lines) if line.startswith("ros2 launch"))
    reproduce = next(i for i, line in enumerate(lines) if "-m benchmarks.headline" in line and "```" not in line)
    assert first_launch < 60 and reproduce < 150, (first_launch + 1, reproduce + 1)
    headings = [line[3:] for line in lines if line.startswith("## ")]
    order = ["Quick start", "Install", "The steering node", "Launch files", "Reproducing the paper",
             "Train on your own data", "Evaluate, replay, simulate", "Closed-loop training", "ONNX",
             "Troubleshooting", "Layout", "Citation and license"]  # fmt: skip
    assert [next(h for h in headings if h.startswith(o)) for o in order] == [
        h for h in headings if any(h.startswith(o) for o in order)
    ]
    assert len(headings) == len(order), headings


def test_no_two_tables_are_the_same() -> None:
    seen: dict[str, str] = {}
    for name in OWNED + ["docs/closed_loop_sweep.md"]:
        for table in re.findall(r"(?:^\|.*\|\n)+", text(name), re.M):
            rows = tuple(sorted(table.strip().splitlines()[2:]))
            key = "\n".join(rows)
            assert key not in seen, f"the same table in {seen.get(key)} and {name}"
            seen[key] = name


# -- links and figures -----------------------------------------------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_and_anchors_resolve() -> None:
    for name in OWNED:
        page = ROOT / name
        for target in LINK.findall(text(name)):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{name}: {target}"
            if anchor and file.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
                assert anchor in anchors, f"{name}: {target} (anchors: {sorted(anchors)})"


def test_every_figure_has_its_source() -> None:
    sources = text("docs/benchmarks.md").split("## Figures and their sources", 1)[1]
    for name in OWNED:
        for target in LINK.findall(text(name)):
            if target.endswith((".png", ".jpg", ".gif")):
                assert Path(target).name in sources, f"{name}: {target} is not in docs/benchmarks.md's figure table"


# -- commands --------------------------------------------------------------------------------------------------------
def shell_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every command in the pages' bash blocks: continuations joined, comments dropped."""
    commands = []
    for name in OWNED:
        for language, block in FENCE.findall(text(name)):
            if language not in ("bash", "sh"):
                continue
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                command: list[str] = []
                for word in [*words, ";"]:
                    if word in (";", "&&", "||", "|", "&"):
                        if command:
                            commands.append((name, command))
                        command = []
                    else:
                        command.append(word)
    return commands


def console_scripts() -> dict[str, Path]:
    """Executable -> the source file that implements it (setup.py, through ros/entry_points.py)."""
    setup, entry = text("setup.py"), text("qattn_ros/ros/entry_points.py")
    scripts = {}
    for exe, module, function in re.findall(r'"(\w+) = ([\w.]+):(\w+)"', setup):
        if module.endswith("entry_points"):
            module = re.search(rf"^{function} = partial\(run, \"([\w.]+)\"", entry, re.M)[1]
        scripts[exe] = ROOT / (module.replace(".", "/") + ".py")
    return scripts


def check_flags(argv: list[str], source: Path) -> None:
    body = source.read_text()
    for word in argv:
        if word.startswith("--") and word != "--ros-args":
            assert f'"{word.split("=")[0]}"' in body, f"{' '.join(argv)}: {word} is not an option of {source}"


def check_ros_args(argv: list[str], exe: str, source: Path) -> None:
    for i, word in enumerate(argv):
        if word == "-p":
            name = argv[i + 1].split(":=")[0]
            known = name in steering_params.PARAMS if exe == "qattn_steering" else f'"{name}"' in source.read_text()
            assert known, f"{' '.join(argv)}: {exe} has no parameter {name}"


def launch_arguments(file: str) -> set[str]:
    if file == "steering.launch.py":
        return {a.name for a in launch_rules.steering_arguments(ROOT)}
    return {a.name for a in {"replay_eval.launch.py": launch_rules.REPLAY_ARGUMENTS,
                             "sim.launch.py": launch_rules.SIM_ARGUMENTS}[file]}  # fmt: skip


def test_every_command_names_what_exists() -> None:
    scripts = console_scripts()
    targets = set(re.findall(r"^([\w-]+):", text("Makefile"), re.M))
    checked = 0
    for page, argv in shell_commands():
        program = argv[0]
        if program.endswith("python") or Path(program).name == "torchrun":
            rest = argv[3:] if argv[1:2] == ["--nproc_per_node"] else argv[1:]
            if rest[0] == "-m":
                spec = importlib.util.find_spec(rest[1])
                assert spec is not None, f"{page}: no module {rest[1]}"
                if rest[1].startswith(("qattn_ros", "benchmarks")):  # colcon, pip: not ours to check
                    check_flags(rest[2:], Path(spec.origin))
            else:
                assert (ROOT / rest[0]).is_file(), f"{page}: no file {rest[0]}"
                check_flags(rest[1:], ROOT / rest[0])
                for word in rest[1:]:
                    if re.match(r"(config|training|evaluation)/\S+\.(yaml|py)$", word):
                        assert (ROOT / word).is_file(), f"{page}: no file {word}"
        elif program.startswith(".venv/bin/") or program in scripts:
            exe = Path(program).name
            assert exe in scripts, f"{page}: no console script {exe}"
            check_flags(argv[1:], scripts[exe])
            check_ros_args(argv, exe, scripts[exe])
        elif argv[:3] == ["ros2", "launch", "qattn_ros"]:
            assert (ROOT / "launch" / argv[3]).is_file(), f"{page}: no launch file {argv[3]}"
            given = {w.split(":=")[0] for w in argv[4:] if ":=" in w}
            assert given <= launch_arguments(argv[3]), f"{page}: {given - launch_arguments(argv[3])} ({argv[3]})"
        elif argv[:3] == ["ros2", "run", "qattn_ros"]:
            assert argv[3] in scripts, f"{page}: no console script {argv[3]}"
            check_ros_args(argv, argv[3], scripts[argv[3]])
        elif program == "make":
            assert set(argv[1:]) <= targets, f"{page}: make {argv[1:]}"
        else:
            continue
        checked += 1
    assert checked > 30


def test_the_readme_names_the_recommended_model_everywhere() -> None:
    for name in OWNED:
        for _, block in FENCE.findall(text(name)):
            assert "runs/demo/quant_sign" not in block, f"{name}: an example on quant_sign instead of binary_sign"
    assert "binary_sign" in text("training/demo.py") and "binary_sign" in text("config/train/synthetic.yaml")


def test_python_snippets_import() -> None:
    for name in OWNED:
        for language, block in FENCE.findall(text(name)):
            if language == "python":
                for module, symbol in re.findall(r"^from ([\w.]+) import (\w+)", block, re.M):
                    assert hasattr(importlib.import_module(module), symbol), f"{name}: from {module} import {symbol}"


# -- the cheap commands, run -----------------------------------------------------------------------------------------
def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_replay_bag_command_makes_the_bag_the_replay_reads(tmp_path) -> None:
    """The README's make_data line (3 frames instead of 100) writes <out>/test.bag, the file qattn_replay is given."""
    line = next(argv for _, argv in shell_commands() if "--format" in argv and "udacity_bag" in argv)
    out = argv_value(line, "--out")
    replay = next(argv for _, argv in shell_commands() if argv[0].endswith("qattn_replay"))
    assert replay[1] == f"{out}/test.bag"
    args = [w if w != out else str(tmp_path / "udacity") for w in line[2:]]
    args[args.index("--test") + 1] = "3"
    result = run("training/make_data.py", *args)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "udacity" / "test.bag").is_file()


def argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("argv", [["-m", "tools.doc_tables", "--check"], ["training/demo.py", "--help"]])
def test_cheap_commands_run(argv) -> None:
    result = run(*argv)
    assert result.returncode == 0, result.stderr
