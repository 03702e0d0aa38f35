"""The package's layers as docs/architecture.md lists them, checked against every import in the tree."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qattn_ros"


def documented_layers() -> dict[str, int]:
    """Sub-package -> its layer number, from the numbered list under `## Layers`."""
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, names in re.findall(r"^(\d+)\. ((?:`\w+/`(?:, )?)+)", section, re.M):
        for name in re.findall(r"`(\w+)/`", names):
            layers[name] = int(number)
    return layers


def imports_of(source: str, package: tuple[str, ...]) -> set[str]:
    """The qattn_ros sub-packages a module of `package` imports, relative or absolute, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                names = [] if node.module else [alias.name for alias in node.names]
            else:
                target, names = (node.module or "").split("."), []
            targets = [target + [name] for name in names] or [target]
        elif isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        else:
            continue
        found |= {t[1] for t in targets if len(t) > 1 and t[0] == "qattn_ros"}
    return found


def sub_package(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def test_the_documented_layers_are_the_tree() -> None:
    layers = documented_layers()
    tree = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(layers) == tree, f"docs/architecture.md lists {sorted(layers)}, the tree holds {sorted(tree)}"
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(root_modules) <= 6, f"the package root holds {root_modules}: group them by purpose"
    assert not list(PACKAGE.rglob("doc_tables.py")), "the documentation generator lives outside the runtime package"


def test_no_import_goes_up_a_layer_and_no_circle_within_one() -> None:
    layers = documented_layers()
    edges: dict[str, set[str]] = {name: set() for name in layers}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue
        mine = sub_package(path)
        package = path.relative_to(ROOT).parent.parts
        for other in imports_of(path.read_text(), package) - {mine}:
            assert other in layers, f"{path.relative_to(ROOT)} imports qattn_ros.{other}, which no layer lists"
            if layers[other] > layers[mine]:
                upward.append(f"{path.relative_to(ROOT)} ({mine}, layer {layers[mine]}) imports {other} "
                              f"(layer {layers[other]})")  # fmt: skip
            edges[mine].add(other)
    assert not upward, "imports up a layer:\n" + "\n".join(upward)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in edges[start])

    circles = sorted(name for name in edges if reaches(name, name, {name}))
    assert not circles, f"sub-packages that import each other in a circle: {circles}"


def test_the_import_reader_sees_relative_absolute_and_nested_imports() -> None:
    """The checker itself, on a module whose imports are known by hand."""
    source = (
        "from ..core import errors\nfrom .pairing import x\nimport qattn_ros.model.network\nimport numpy\n"
        "def f():\n    from ..inference.predictor import SteeringPredictor\n    from .. import sim\n"
    )
    assert imports_of(source, ("qattn_ros", "rules")) == {"core", "rules", "model", "inference", "sim"}
