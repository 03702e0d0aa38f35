"""Image and steering messages in and out: validate, decode with rosbags-image, fill outgoing fields.

Incoming frames are checked before decoding (encoding, size, step, data length, a pixel
limit) so that a bad frame becomes one clear `BadFrame` error instead of a crash or a
100 MB allocation. Decoding itself is rosbags-image's (`data.images.message_to_rgb`).
"""

from __future__ import annotations

import array as pyarray
import io
from types import SimpleNamespace

import numpy as np
from PIL import Image as PilImage
from sensor_msgs.msg import JointState

from ..data.images import message_to_rgb
from ..errors import DataError

RAW_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "rgb16": 6, "bgr16": 6, "mono16": 2}
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class BadFrame(ValueError):
    """An incoming image cannot be used; the message says why."""


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadFrame(f"zero-size image ({width}x{height})")
    if height * width > max_pixels:
        raise BadFrame(f"image of {width}x{height} exceeds max_pixels={max_pixels}")


def image_to_rgb(msg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) RGB uint8, after checking encoding, step and length."""
    encoding = msg.encoding.lower()
    if encoding not in RAW_ENCODINGS:
        raise BadFrame(f"unsupported encoding {msg.encoding!r}; supported: {', '.join(RAW_ENCODINGS)}")
    _check_size(msg.height, msg.width, max_pixels)
    row = msg.width * RAW_ENCODINGS[encoding]
    if msg.step < row:
        raise BadFrame(f"step {msg.step} is smaller than width x bytes per pixel = {row} ({msg.encoding})")
    data = np.asarray(msg.data, np.uint8) if isinstance(msg.data, list) else np.frombuffer(msg.data, np.uint8)
    if data.size != msg.step * msg.height:
        raise BadFrame(f"data has {data.size} bytes, step x height = {msg.step * msg.height}")
    if msg.step != row:  # strip row padding before handing the buffer on
        data = data.reshape(msg.height, msg.step)[:, :row].reshape(-1)
    view = SimpleNamespace(encoding=encoding, height=msg.height, width=msg.width, step=row,
                           is_bigendian=msg.is_bigendian, data=data)  # fmt: skip
    try:
        return message_to_rgb(view)
    except DataError as error:
        raise BadFrame(str(error)) from None


def compressed_to_rgb(msg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> (H, W, 3) RGB uint8; size checked before decoding."""
    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise BadFrame(f"unsupported compressed format {msg.format!r}; supported: jpeg, png")
    data = bytes(msg.data)
    if not data:
        raise BadFrame("empty compressed image")
    try:
        width, height = PilImage.open(io.BytesIO(data)).size  # reads the header only
    except Exception as error:  # PIL raises several types for unreadable headers
        raise BadFrame(f"corrupt {msg.format} image ({error})") from None
    _check_size(height, width, max_pixels)
    view = SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))
    try:
        return message_to_rgb(view)
    except DataError as error:
        raise BadFrame(str(error)) from None


def fill_image(msg, header, array: np.ndarray, encoding: str):
    """Fill a sensor_msgs/Image from a contiguous (H, W[, C]) array."""
    msg.header = header
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = array.strides[0]
    buffer = pyarray.array("B")
    buffer.frombytes(np.ascontiguousarray(array).view(np.uint8).data)  # one copy, into the field type
    msg.data = buffer
    return msg


STEERING_JOINT = "front_wheel"


def steering_message(header, wheel_angle: float) -> JointState:
    """A stamped front-wheel angle (rad, positive left): sensor_msgs/JointState, one joint.

    JointState is the standard stamped message for a named angle in rad: it carries the input
    frame's header (so a prediction can be paired with its frame and its ground truth), and
    RViz, Foxglove and PlotJuggler plot it without custom types. Float32 has no header;
    ackermann_msgs is not everywhere.
    """
    return JointState(header=header, name=[STEERING_JOINT], position=[float(wheel_angle)])


def steering_value(msg: JointState) -> float:
    return float(msg.position[list(msg.name).index(STEERING_JOINT)])
