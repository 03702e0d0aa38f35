"""The steering node's parameters, without ROS: defaults, ranges, choices and the rule for a choice.

`qattn_ros.ros.steering_node` declares each with its range in the descriptor; start-up and
runtime changes are checked by the same rules. `config/steering_node.yaml` holds the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.preprocess import CAMERA_FITS
from ..core.units import DEFAULT_VEHICLE
from ..explain.overlay import COLORMAPS
from ..inference.backends import BACKENDS

RELIABILITIES = ("auto", "best_effort", "reliable")


@dataclass(frozen=True)
class Param:
    default: bool | int | float | str
    description: str
    low: float | None = None  # allowed range, in the descriptor
    high: float | None = None
    choices: tuple[str, ...] = ()
    runtime: bool = False  # may change while the node runs


PARAMS = {
    "checkpoint": Param(
        "default", "a shipped model (default, sim_roads, udacity_hmb3) or <name>.safetensors (.json beside it)"
    ),
    "autostart": Param(True, "configure and activate at start"),
    "device": Param("auto", "auto | cpu | cuda | cuda:N"),
    "backend": Param("torch", "torch, or onnxruntime[:tensorrt] on qattn_export's <name>.onnx", choices=BACKENDS),
    "transport": Param("raw", "subscribe `image` (raw) or `image/compressed`", choices=("raw", "compressed")),
    "reliability": Param(
        "auto", "image QoS: auto follows the camera's publishers; best_effort | reliable", choices=RELIABILITIES
    ),
    "base_frame": Param("base_link", "frame_id of cmd_vel and drive"),
    "cmd_vel_type": Param("twist_stamped", "cmd_vel message type", choices=("twist_stamped", "twist")),
    "cruise_speed": Param(2.0, "m/s, linear.x of cmd_vel", 0.0, 40.0, runtime=True),
    "max_steering_angle": Param(0.6, "rad, front wheel: larger predictions are clamped", 0.01, 1.5),
    "wheelbase": Param(DEFAULT_VEHICLE.wheelbase, "m, this vehicle's, for the yaw rate of cmd_vel", 0.1, 10.0),
    "camera_timeout": Param(0.5, "s without a frame before the watchdog stops the vehicle", 0.05, 10.0),
    "max_frame_gap": Param(1.0, "s: a larger stamp gap (or a step back) resets a recurrent model", 0.01, 3600.0),
    "publish_overlay": Param(True, "publish attention/overlay", runtime=True),
    "overlay_alpha": Param(0.5, "heat-map opacity at the peak", 0.0, 1.0, runtime=True),
    "colormap": Param("jet", "overlay colour map", choices=tuple(COLORMAPS), runtime=True),
    "overlay_max_width": Param(
        640, "px: a wider camera's overlay is scaled down to this width (0: camera size)", 0, 65535, runtime=True
    ),
    "max_pixels": Param(4096 * 4096, "larger frames are refused and counted as bad", 1, 2**28),
    "cpu_threads": Param(1, "torch threads on CPU (0: torch's default)", 0, 256),
    "keep_heap": Param(True, "glibc: reuse freed frame buffers instead of fresh pages"),
    "diagnostics_period": Param(1.0, "s, the diagnostics window", 0.1, 60.0),
    "camera_fit": Param(
        "crop", "another aspect than the checkpoint's: crop to it, or squash it (distorts)", choices=CAMERA_FITS
    ),  # fmt: skip
    "crop_anchor": Param(0.5, "where the crop of a taller frame sits: 0 top, 0.5 centre, 1 bottom", 0.0, 1.0),
    "accept_camera_mismatch": Param(
        False, "run on a camera the checkpoint's geometry cannot map (WARN), not refuse it"
    ),
    "camera_width": Param(0, "px: the camera's frame size, checked at configure (0: at the first frame)", 0, 65535),
    "camera_height": Param(0, "px: the camera's frame size, checked at configure (0: at the first frame)", 0, 65535),
    "exit_when_finalized": Param(True, "a lifecycle shutdown ends the process (false: it stays, finalized)"),
    "stop_with_parent": Param(True, "the process that started this one ends (launch, a supervisor): stop and exit"),
}
DEFAULTS = {name: spec.default for name, spec in PARAMS.items()}  # config/steering_node.yaml holds the same


def choice_error(name: str, value) -> str:
    """Why a value of a choice parameter is refused ('' if it is allowed): at start-up and at runtime."""
    spec = PARAMS.get(name)
    if spec is None or not spec.choices or value in spec.choices:
        return ""
    return f"parameter {name}={value!r}: expected one of {', '.join(spec.choices)}"
