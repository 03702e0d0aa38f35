"""The ROS install path: what rosdep installs from package.xml, and the pip step of `make setup` on a ROS install."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# rosdep keys (rosdistro's rosdep/python.yaml) that resolve on Ubuntu Jammy (Humble) and Noble (Jazzy) to a
# version the code works with, and the module each provides. python3-torch is not one: it installs Ubuntu's own
# torch (Jammy: 1.8.1, below the 2.3 requirements-on-ros.txt asks for); torch comes from pip (requirements-on-ros.txt).
ROSDEP_PYTHON_KEYS = {
    "python3-opencv": "cv2",
    "python3-numpy": "numpy",
    "python3-yaml": "yaml",
    "python3-tqdm": "tqdm",
    "python3-matplotlib": "matplotlib",
    "python3-pil": "PIL",
}
PACKAGE_FILES = ("package.xml", "setup.py", "setup.cfg", "resource", "qattn_ros", "launch", "config", "Makefile")


def imported_top_level_modules(paths: list[Path]) -> set[str]:
    """The absolute imports of these files, by top-level name."""
    imported = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    return imported


def requirement_names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[<>=!~;\[ ]", line)[0].lower().replace("-", "_") for line in lines if line}


def test_package_xml_and_requirements_on_ros_provide_every_import() -> None:
    """rosdep installs what package.xml names and pip what requirements-on-ros.txt names; nothing else is there."""
    declared = set(re.findall(r"<exec_depend>([\w-]+)</exec_depend>", (ROOT / "package.xml").read_text()))
    keys = {name for name in declared if name.startswith("python3-")}
    assert keys <= ROSDEP_PYTHON_KEYS.keys(), (
        f"no usable rosdep key on Jammy and Noble: {keys - ROSDEP_PYTHON_KEYS.keys()}"
    )
    pip = requirement_names(ROOT / "requirements-on-ros.txt")
    optional = {"onnxruntime"}  # imported only for backend onnxruntime; the README's ONNX section installs it
    provided = (declared - keys) | {ROSDEP_PYTHON_KEYS[key] for key in keys} | pip | optional | {"qattn_ros"}
    code = [*(ROOT / "qattn_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]
    third_party = imported_top_level_modules(code) - set(sys.stdlib_module_names)
    assert {"rclpy", "launch_ros", "torch", "cv2"} <= third_party  # the scan sees them
    assert third_party <= provided, (
        f"imported but neither in package.xml nor requirements-on-ros.txt: {third_party - provided}"
    )


def test_requirements_on_ros_is_the_runtime_and_the_constraints_hold_the_distro() -> None:
    """Test-only packages pulled numpy 2 over apt's on Jammy; setuptools >= 80 breaks colcon --symlink-install."""
    runtime = requirement_names(ROOT / "requirements-on-ros.txt")
    test_only = requirement_names(ROOT / "requirements-test.txt")
    assert not runtime & test_only and {"pandas", "scikit_learn", "scikit_image"} <= test_only
    for distro, numpy in (("humble", "1.21."), ("jazzy", "1.26.")):
        pins = dict(line.split("==") for line in (ROOT / f"constraints-{distro}.txt").read_text().splitlines()
                    if "==" in line and not line.startswith("#"))  # fmt: skip
        assert pins["numpy"].startswith(numpy), distro
        assert "setuptools>=77.0.3,<80" in (ROOT / f"constraints-{distro}.txt").read_text(), distro


def test_make_editable_installs_with_setuptools_80_or_later(tmp_path) -> None:
    """`make setup` on a ROS install: pip's legacy `setup.py develop` path refused setup.cfg's [develop] script_dir."""
    source = tmp_path / "src"
    source.mkdir()
    for name in PACKAGE_FILES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(
            ROOT / name,
            source / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # `wheel` importable and setuptools >= 80: what made pip take the legacy path and setuptools refuse it
    tools = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "setuptools>=80", "wheel"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert tools.returncode == 0, tools.stderr[-2000:]
    install = subprocess.run(["make", "--no-print-directory", "editable", f"VENV={venv}"], cwd=source,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import qattn_ros; print(qattn_ros.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert where.stdout.strip() == str(source / "qattn_ros" / "__init__.py"), where.stdout + where.stderr
    assert (venv / "bin" / "qattn_steering").is_file() and (venv / "bin" / "steering_node").is_file(), "and the alias"
