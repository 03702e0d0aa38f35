"""Declaring a node's parameters from a table of specs: ranges in the descriptors, refusals that name them."""

from __future__ import annotations

from collections.abc import Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from ..rules.steering_params import Param


class StartupError(RuntimeError):
    """The node cannot start (parameters, checkpoint, device); the message says why."""


def _descriptor(name: str, spec: Param) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, read_only=not spec.runtime, description=spec.description)
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.low is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    elif spec.low is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    return descriptor


def declare_parameters(node: Node, specs: dict[str, Param], choice_error: Callable[[str, object], str]) -> dict:
    """Declare each parameter with its descriptor; {name: value}, or StartupError naming the first bad one."""
    for name, spec in specs.items():
        try:
            node.declare_parameter(name, spec.default, _descriptor(name, spec))
        except ParameterException as error:
            kind = type(spec.default).__name__
            allowed = f"a {kind} in [{spec.low}, {spec.high}]" if spec.low is not None else f"a {kind}"
            raise StartupError(f"parameter {name} must be {allowed} ({error})") from None
        if problem := choice_error(name, node.get_parameter(name).value):
            raise StartupError(problem)
    return {name: node.get_parameter(name).value for name in specs}
