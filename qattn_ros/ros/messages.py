"""Image and steering messages in and out: validate, decode, fill outgoing fields.

Incoming frames are checked before decoding (encoding, size, step, data length, a pixel
limit) so that a bad frame becomes one clear `BadFrame` error instead of a crash or a
100 MB allocation. Raw images are decoded here with OpenCV, from views of the message's
buffer (one conversion, no copy before it); compressed ones by rosbags-image
(`data.images.message_to_rgb`).
"""

from __future__ import annotations

import array as pyarray
import io
from dataclasses import dataclass
from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image as PilImage
from sensor_msgs.msg import JointState

from ..core.errors import DataError
from ..data.images import message_to_rgb


@dataclass(frozen=True)
class Encoding:
    """How a sensor_msgs/Image encoding lies in memory and turns into RGB.

    `samples` per pixel in a row of `depth` bytes each; `code`: the one cv2.cvtColor to RGB (None: the
    samples are RGB already); `pick`: for 16-bit RGB/BGR/mono, the samples that give R, G, B (broadcast for
    mono) as a view, scaled by one lookup instead of a cvtColor;
    `planar`: NV12/NV21, a full-size Y plane then a half-height interleaved chroma plane (height x 3/2 rows)."""

    samples: int
    depth: int = 1
    code: int | None = None
    pick: slice | None = None
    planar: bool = False

    @property
    def bytes_per_pixel(self) -> int:
        return self.samples * self.depth


_RGB, _BGR = slice(0, 3), slice(2, None, -1)  # views of the colour samples, in RGB order
# names as in ROS's sensor_msgs/image_encodings.hpp. OpenCV names a Bayer pattern by the 2x2 cell that starts at
# the second row and column, ROS by the one that starts at the first: ROS rggb is OpenCV's BG, i.e. the
# COLOR_BayerRGGB2RGB alias of COLOR_BayerBG2RGB (test_encodings checks the colours of each pattern).
RAW_ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3),                        "bgr8": Encoding(3, code=cv2.COLOR_BGR2RGB),
    "rgba8": Encoding(4, code=cv2.COLOR_RGBA2RGB), "bgra8": Encoding(4, code=cv2.COLOR_BGRA2RGB),
    "rgb16": Encoding(3, 2, pick=_RGB),         "bgr16": Encoding(3, 2, pick=_BGR),
    "rgba16": Encoding(4, 2, pick=_RGB),        "bgra16": Encoding(4, 2, pick=_BGR),
    "mono8": Encoding(1, code=cv2.COLOR_GRAY2RGB), "mono16": Encoding(1, 2, pick=slice(0, 1)),
    "yuv422": Encoding(2, code=cv2.COLOR_YUV2RGB_UYVY), "uyvy": Encoding(2, code=cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": Encoding(2, code=cv2.COLOR_YUV2RGB_YUY2), "yuyv": Encoding(2, code=cv2.COLOR_YUV2RGB_YUY2),
    "nv12": Encoding(1, code=cv2.COLOR_YUV2RGB_NV12, planar=True),
    "nv21": Encoding(1, code=cv2.COLOR_YUV2RGB_NV21, planar=True),
    "bayer_rggb8": Encoding(1, code=cv2.COLOR_BayerRGGB2RGB), "bayer_rggb16": Encoding(1, 2, cv2.COLOR_BayerRGGB2RGB),
    "bayer_bggr8": Encoding(1, code=cv2.COLOR_BayerBGGR2RGB), "bayer_bggr16": Encoding(1, 2, cv2.COLOR_BayerBGGR2RGB),
    "bayer_gbrg8": Encoding(1, code=cv2.COLOR_BayerGBRG2RGB), "bayer_gbrg16": Encoding(1, 2, cv2.COLOR_BayerGBRG2RGB),
    "bayer_grbg8": Encoding(1, code=cv2.COLOR_BayerGRBG2RGB), "bayer_grbg16": Encoding(1, 2, cv2.COLOR_BayerGRBG2RGB),
}  # fmt: skip
SUPPORTED = ", ".join(RAW_ENCODINGS)
# 16 -> 8 bits: floor(v x 255 / 65535) (= v // 257), as rosbags-image scaled before; one lookup per sample
_TO_8BIT = (np.arange(65536) * (255.0 / 65535.0)).astype(np.uint8)
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class BadFrame(ValueError):
    """An incoming image cannot be used; the message says why."""


class UnsupportedEncoding(BadFrame):
    """A raw image in an encoding this node cannot read (every frame of such a camera will be refused)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        super().__init__(f"unsupported encoding {encoding!r}; supported: {SUPPORTED}")


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadFrame(f"zero-size image ({width}x{height})")
    if height * width > max_pixels:
        raise BadFrame(f"image of {width}x{height} exceeds max_pixels={max_pixels}")


def image_to_rgb(msg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) RGB uint8, after checking encoding, size, step and length.

    UnsupportedEncoding for an encoding not in RAW_ENCODINGS (float and depth images included)."""
    spec = RAW_ENCODINGS.get(msg.encoding.lower())
    if spec is None:
        raise UnsupportedEncoding(msg.encoding)
    height, width, step = msg.height, msg.width, msg.step
    _check_size(height, width, max_pixels)
    if (spec.samples == 2 or spec.planar) and width % 2:
        raise BadFrame(f"{msg.encoding} needs an even width, got {width}")
    if spec.planar and height % 2:
        raise BadFrame(f"{msg.encoding} needs an even height, got {height}")
    row = width * spec.bytes_per_pixel
    if step < row:
        raise BadFrame(f"step {step} is smaller than width x bytes per pixel = {row} ({msg.encoding})")
    rows = height * 3 // 2 if spec.planar else height
    data = np.asarray(msg.data, np.uint8) if isinstance(msg.data, list) else np.frombuffer(msg.data, np.uint8)
    if data.size != step * rows:
        what = "step x height x 3/2" if spec.planar else "step x height"
        raise BadFrame(f"data has {data.size} bytes, {what} = {step * rows}")
    plane = data.reshape(rows, step)[:, :row]  # a view: row padding skipped, not copied
    if spec.depth == 2:
        plane = plane.view(">u2" if msg.is_bigendian else "<u2")
    pixels = plane.reshape(rows, width, spec.samples)  # still a view
    try:
        if spec.pick is not None:  # 16-bit RGB, BGR, mono (+ alpha): channels picked as a view, scaled in one pass
            return _TO_8BIT[np.broadcast_to(pixels[..., spec.pick], (height, width, 3))]
        if spec.depth == 2:  # 16-bit Bayer: demosaiced at full depth (native byte order), then scaled
            native = pixels.astype(np.uint16, copy=False)  # a copy only for big-endian data
            if not native.flags.aligned:  # an odd step: OpenCV misreads 16-bit rows that start at odd bytes
                native = np.ascontiguousarray(native)
            return _TO_8BIT[cv2.cvtColor(native, spec.code)]
        if spec.code is None:
            return np.ascontiguousarray(pixels)
        return cv2.cvtColor(pixels, spec.code)
    except cv2.error as error:
        raise BadFrame(f"cannot decode {msg.encoding} image of {width}x{height}: {error}") from None


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
