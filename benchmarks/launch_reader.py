"""Run a launch file's generate_launch_description() without `launch`, and the nodes it starts as launch_ros would.

`launch` and `launch_ros` are not on PyPI. Stand-ins of the names the launch files use record
each action's arguments; the reader then does what `ros2 launch` does with them: declared
defaults and given arguments become launch configurations, OpaqueFunctions run with them,
GroupAction(forwarding=False) + IncludeLaunchDescription load the included file with only the
configurations passed. Each recorded node becomes the command launch_ros 0.28 runs:
`<executable> --ros-args -r __node:=<name> -r __ns:=<ns> --params-file <file>... -r <from>:=<to>...`,
a parameter dict written to a YAML file keyed by the node's full name, as launch_ros writes it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qattn_ros.core.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "launch", "launch.actions", "launch.conditions", "launch.event_handlers", "launch.events",
    "launch.launch_description_sources", "launch.substitutions", "launch_ros", "launch_ros.actions",
    "launch_ros.parameter_descriptions",
)  # fmt: skip


class Recorded:
    """Any launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: type(attr, (Recorded,), {})  # a class per name, made on first use
    return module


@contextlib.contextmanager
def launch_absent():
    """The stand-ins in sys.modules (and launch_actions imported against them) for the duration."""
    saved = {name: sys.modules.get(name) for name in (*MODULES, "qattn_ros.ros.launch_actions")}
    sys.modules.update({name: _stand_in(name) for name in MODULES})
    sys.modules.pop("qattn_ros.ros.launch_actions", None)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@dataclass
class Context:
    launch_configurations: dict[str, str]
    is_shutdown: bool = False


@dataclass
class LaunchedNode:
    executable: str
    name: str
    namespace: str
    parameters: list  # params file paths (str) and dicts
    remappings: list[tuple[str, str]]
    kwargs: dict
    on_exit: list = field(default_factory=list)  # the exit handlers' callables

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}" if self.namespace else f"/{self.name}"

    def parameter_dict(self) -> dict:
        """The dict parameters as the node receives them (ParameterValue unwrapped)."""
        merged = {}
        for item in (p for p in self.parameters if isinstance(p, dict)):
            merged |= {k: v.args[0] if isinstance(v, Recorded) else v for k, v in item.items()}
        return merged

    def command(self, folder: Path, entry_points: dict[str, str]) -> list[str]:
        """The command launch_ros runs, with `python -m ...` for the installed console script."""
        command = [sys.executable, *entry_points[self.executable], "--ros-args", "-r", f"__node:={self.name}"]
        command += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for index, item in enumerate(self.parameters):
            if isinstance(item, dict):
                path = folder / f"launch_params_{self.name}_{index}.yaml"
                write_text(path, yaml.dump({self.full_name: {"ros__parameters": self.parameter_dict()}}))
                item = str(path)
            command += ["--params-file", item]
        for old, new in self.remappings:
            command += ["-r", f"{old}:={new}"]
        return command


@dataclass
class Launched:
    arguments: dict[str, Recorded]  # declared: name -> DeclareLaunchArgument
    nodes: list[LaunchedNode]
    actions: list[Recorded]  # every action seen

    def node(self, name: str) -> LaunchedNode:
        return next(n for n in self.nodes if n.name == name)


def entry_points() -> dict[str, list[str]]:
    """executable -> the Python arguments that run it as its console script does, from setup.py's console_scripts
    (`module:main` -> `-m module`; `module:function` -> `-m module function`, as qattn_ros.ros.entry_points takes)."""
    scripts = re.findall(r'"(\w+) = ([\w.]+):(\w+)"', (ROOT / "setup.py").read_text())
    return {name: ["-m", module] + ([] if function == "main" else [function]) for name, module, function in scripts}


def load(path: Path, given: dict[str, str]) -> Launched:
    """What `ros2 launch <path> name:=value...` starts; raises what the launch would stop on."""
    with launch_absent():
        return _load(path, given)


def _load(path: Path, given: dict[str, str]) -> Launched:
    spec = importlib.util.spec_from_file_location(f"launch_file_{path.stem.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    launched = Launched({}, [], [])
    context = Context(dict(given))
    _visit(list(description.args[0]), context, launched)
    for handler in (a for a in launched.actions if type(a).__name__ == "RegisterEventHandler"):
        exit_handler = handler.args[0]
        target = exit_handler.kwargs["target_action"]
        next(n for n in launched.nodes if n.kwargs is target.kwargs).on_exit.append(exit_handler.kwargs["on_exit"])
    return launched


def _visit(entities: list, context: Context, launched: Launched) -> None:
    for entity in entities:
        launched.actions.append(entity)
        kind = type(entity).__name__
        if kind == "DeclareLaunchArgument":
            name = entity.args[0]
            launched.arguments[name] = entity
            default = entity.kwargs.get("default_value")
            if name not in context.launch_configurations:
                if default is None:
                    raise RuntimeError(f"included launch description missing required argument '{name}'")
                context.launch_configurations[name] = default
        elif kind == "OpaqueFunction":
            _visit(entity.kwargs["function"](context) or [], context, launched)
        elif kind == "GroupAction":
            assert entity.kwargs.get("forwarding") is False, "included files get only what is passed"
            inner = dict(entity.kwargs["launch_configurations"])
            for include in entity.args[0]:
                included = _load(Path(include.args[0].args[0]), inner)
                launched.arguments.update({f"{include.args[0].args[0]}:{k}": v for k, v in included.arguments.items()})
                launched.nodes += included.nodes  # exit handlers attached there
        elif kind in ("Node", "LifecycleNode"):
            kwargs = entity.kwargs
            launched.nodes.append(LaunchedNode(kwargs["executable"], kwargs.get("name", kwargs["executable"]),
                                               kwargs.get("namespace", ""), list(kwargs.get("parameters", [])),
                                               list(kwargs.get("remappings", [])), kwargs))  # fmt: skip
