"""Every raw camera encoding the node reads (qattn_ros.ros.messages.image_to_rgb), against encoders written here.

A known RGB image (smooth ramps and flat colour patches) is encoded in plain numpy, independently of OpenCV:
YUV by the BT.601 limited-range ("studio swing", Y 16-235, chroma 16-240) formulas, which are what OpenCV's
YUV 4:2:2 and 4:2:0 decoders invert; Bayer by sampling each channel at its mosaic positions (ROS names the 2x2
cell at the top-left pixel). Decoded, it must give the image back: exactly for RGB/BGR/mono, within a stated
tolerance for YUV (chroma is shared by 2 or 4 pixels, and 8-bit YUV rounds) and Bayer (demosaicing guesses
two channels of three: compared on flat patches and linear ramps, where bilinear interpolation is exact).
A wrong OpenCV constant (UYVY for YUY2, NV12 for NV21, OpenCV's Bayer RG for ROS's rggb, an RGB/BGR swap)
turns the coloured patches into other colours and fails here.
"""

import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage
from sensor_msgs.msg import Image

from qattn_ros.ros.messages import RAW_ENCODINGS, BadFrame, UnsupportedEncoding, image_to_rgb

HEIGHT, WIDTH, PATCH = 48, 64, 12
MAX_PIXELS = 10_000_000
# flat patches at even rows and columns (a 2x2 chroma block or Bayer cell never straddles a patch edge)
COLOURS = {
    "red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200), "yellow": (220, 210, 40),
    "cyan": (40, 200, 210), "magenta": (210, 40, 200), "white": (235, 235, 235), "dark": (40, 40, 40),
}  # fmt: skip
CORNERS = [(y, x) for y in (4, 30) for x in (2, 18, 34, 50)]
# tolerances, in 8-bit levels (why: see the tests that use them)
# (measured with OpenCV 4.x: YUV patches 1, everywhere 3 (4:2:2) and 4 (4:2:0), mean 0.58 and 0.88; Bayer 0)
YUV_PATCH_TOL = 2  # flat colour: only the rounding of Y, U, V to 8 bits (x 1.164 for Y, up to x 2.018 for U)
YUV_RAMP_TOL = 5  # ramps too: a pixel's chroma is its pair's / 2x2 block's mean, off by up to half a ramp step
YUV_MEAN_TOL = 1.2
BAYER_TOL = 1  # flat patches and linear ramps: bilinear interpolation is exact there, up to rounding


def reference() -> np.ndarray:
    """(48, 64, 3) uint8 RGB: linear ramps in R (across), G (down) and B (diagonal), and eight flat patches."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([40 + 3 * x, 30 + 4 * y, 200 - (x + y)], axis=-1)
    for (top, left), colour in zip(CORNERS, COLOURS.values()):
        rgb[top : top + PATCH, left : left + PATCH] = colour
    return rgb.astype(np.uint8)


def patches(margin: int) -> dict[str, tuple[slice, slice]]:
    """Each patch's interior, `margin` pixels in from its edges."""
    return {name: (slice(top + margin, top + PATCH - margin), slice(left + margin, left + PATCH - margin))
            for (top, left), name in zip(CORNERS, COLOURS)}  # fmt: skip


def ramps(margin: int) -> np.ndarray:
    """True where the `margin`-neighbourhood is all ramp (no patch, no image border)."""
    near = np.ones((HEIGHT, WIDTH), bool)
    near[margin : HEIGHT - margin, margin : WIDTH - margin] = False
    for top, left in CORNERS:
        near[max(top - margin, 0) : top + PATCH + margin, max(left - margin, 0) : left + PATCH + margin] = True
    return ~near


def message(encoding: str, rows: np.ndarray, width: int = WIDTH, height: int = HEIGHT, big: bool = False, pad=0):
    """A sensor_msgs/Image of `rows` (one row of bytes per image row, or per NV12 plane row), rows padded by
    `pad` junk bytes."""
    rows = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    if pad:
        rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big), step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


# -- independent encoders -----------------------------------------------------------------------------------------
def yuv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range, unrounded: Y 16-235, U (Cb) and V (Cr) 16-240 around 128."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


def to8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def encode_422(rgb: np.ndarray, order: str) -> np.ndarray:
    """(H, W x 2) bytes, `order` "uyvy" or "yuyv": one U and one V (the pair's mean) per two pixels."""
    y, u, v = yuv_planes(rgb)
    u, v = (to8((c[:, 0::2] + c[:, 1::2]) / 2) for c in (u, v))
    y0, y1 = to8(y[:, 0::2]), to8(y[:, 1::2])
    parts = {"uyvy": (u, y0, v, y1), "yuyv": (y0, u, y1, v)}[order]
    return np.stack(parts, axis=-1).reshape(rgb.shape[0], -1)


def encode_420sp(rgb: np.ndarray, order: str) -> np.ndarray:
    """(H x 3/2, W) bytes: the Y plane, then one U,V (nv12) or V,U (nv21) pair per 2x2 block."""
    y, u, v = yuv_planes(rgb)
    u, v = (to8((c[0::2, 0::2] + c[0::2, 1::2] + c[1::2, 0::2] + c[1::2, 1::2]) / 4) for c in (u, v))
    chroma = np.stack((u, v) if order == "nv12" else (v, u), axis=-1).reshape(rgb.shape[0] // 2, -1)
    return np.concatenate([to8(y), chroma], axis=0)


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W): each pixel keeps the one channel the ROS pattern puts there ("rggb": R at (0, 0), B at (1, 1))."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for index, letter in enumerate(pattern):
        dy, dx = divmod(index, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(letter)]
    return out


def gray(rgb: np.ndarray) -> np.ndarray:
    return to8(rgb @ np.array([0.299, 0.587, 0.114]))


# -- RGB, BGR, mono: exact ----------------------------------------------------------------------------------------
def packed(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The samples of an RGB/BGR/mono (+ alpha) encoding, 8 or 16 bits (16: the 8-bit value x 257)."""
    name = encoding.rstrip("0123456789")
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    samples = {"rgb": rgb, "bgr": rgb[..., ::-1], "rgba": np.concatenate([rgb, alpha], -1),
               "bgra": np.concatenate([rgb[..., ::-1], alpha], -1), "mono": gray(rgb)[..., None]}[name]  # fmt: skip
    return samples if encoding.endswith("8") else samples.astype(np.uint16) * 257


EXACT = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "rgba16", "bgra16", "mono16"]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("encoding", EXACT)
def test_rgb_bgr_and_mono_decode_exactly_in_either_byte_order(encoding, big) -> None:
    rgb = reference()
    samples = packed(rgb, encoding)
    if samples.dtype == np.uint16:
        samples = samples.astype(">u2" if big else "<u2")
    expected = np.repeat(gray(rgb)[..., None], 3, axis=2) if encoding.startswith("mono") else rgb
    decoded = image_to_rgb(message(encoding, samples.reshape(HEIGHT, -1), big=big), MAX_PIXELS)
    assert decoded.shape == (HEIGHT, WIDTH, 3) and decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "mono16"])
def test_the_encodings_read_before_decode_as_rosbags_image_decoded_them(encoding) -> None:
    """The encodings the node read through rosbags-image give the same pixels (every 16-bit value, both orders)."""
    rng = np.random.default_rng(5)
    spec = RAW_ENCODINGS[encoding]
    for big in (0, 1):
        raw = rng.integers(0, 256, (HEIGHT, WIDTH * spec.bytes_per_pixel), np.uint8)
        msg = message(encoding, raw, big=big)
        old = message_to_cvimage(msg, "rgb8")
        old = cv2.cvtColor(old, cv2.COLOR_GRAY2RGB) if old.ndim == 2 else old
        assert np.array_equal(image_to_rgb(msg, MAX_PIXELS), old)


def test_rgb8_without_padding_is_a_view_of_the_message() -> None:
    data = bytearray(reference().tobytes())
    msg = type("Msg", (), dict(encoding="rgb8", height=HEIGHT, width=WIDTH, step=WIDTH * 3, is_bigendian=0,
                               data=data))  # fmt: skip
    assert np.shares_memory(image_to_rgb(msg, MAX_PIXELS), np.frombuffer(data, np.uint8))


# -- YUV ----------------------------------------------------------------------------------------------------------
YUV = {"yuv422": "uyvy", "uyvy": "uyvy", "yuv422_yuy2": "yuyv", "yuyv": "yuyv", "nv12": "nv12", "nv21": "nv21"}


def yuv_message(encoding: str, rgb: np.ndarray, pad: int = 0):
    order = YUV[encoding.lower()]
    rows = encode_422(rgb, order) if order in ("uyvy", "yuyv") else encode_420sp(rgb, order)
    return message(encoding, rows, width=rgb.shape[1], height=rgb.shape[0], pad=pad)


@pytest.mark.parametrize("encoding", list(YUV))
def test_yuv_decodes_to_the_colours_it_was_made_from(encoding) -> None:
    """Flat patches within YUV_PATCH_TOL (8-bit rounding of Y, U, V only); ramps within YUV_RAMP_TOL (each pixel
    also gets its pair's or 2x2 block's mean chroma)."""
    rgb = reference()
    decoded = image_to_rgb(yuv_message(encoding, rgb), MAX_PIXELS).astype(int)
    error = np.abs(decoded - rgb)
    for name, area in patches(0).items():
        assert error[area].max() <= YUV_PATCH_TOL, (name, decoded[area][0, 0], COLOURS[name])
    assert error.max() <= YUV_RAMP_TOL and error.mean() <= YUV_MEAN_TOL, (error.max(), error.mean())


def test_yuv_encodings_are_matched_in_any_case_and_padded_rows_are_skipped() -> None:
    rgb = reference()
    for encoding in ("yuv422", "YUV422_YUY2", "nv12", "NV21"):
        plain = image_to_rgb(yuv_message(encoding.lower(), rgb), MAX_PIXELS)
        padded = image_to_rgb(yuv_message(encoding, rgb, pad=6), MAX_PIXELS)
        assert np.array_equal(padded, plain), encoding


def test_yuv_sizes_that_cannot_be_are_refused() -> None:
    with pytest.raises(BadFrame, match="yuv422_yuy2 needs an even width, got 63"):
        image_to_rgb(message("yuv422_yuy2", np.zeros((HEIGHT, 63 * 2), np.uint8), width=63), MAX_PIXELS)
    with pytest.raises(BadFrame, match="nv12 needs an even height, got 47"):
        image_to_rgb(message("nv12", np.zeros((70, WIDTH), np.uint8), height=47), MAX_PIXELS)
    with pytest.raises(BadFrame, match="nv21 needs an even width"):
        image_to_rgb(message("nv21", np.zeros((72, 63), np.uint8), width=63), MAX_PIXELS)
    short = yuv_message("yuyv", reference())
    short.data = bytes(short.data)[:-1]
    size = HEIGHT * WIDTH * 2
    with pytest.raises(BadFrame, match=f"data has {size - 1} bytes, step x height = {size}"):
        image_to_rgb(short, MAX_PIXELS)
    luma_only = message("nv12", np.zeros((HEIGHT, WIDTH), np.uint8))  # the chroma plane left out
    with pytest.raises(BadFrame, match=f"step x height x 3/2 = {HEIGHT * WIDTH * 3 // 2}"):
        image_to_rgb(luma_only, MAX_PIXELS)
    narrow = yuv_message("uyvy", reference())
    narrow.step = WIDTH * 2 - 2
    with pytest.raises(BadFrame, match="step 126 is smaller than width x bytes per pixel = 128"):
        image_to_rgb(narrow, MAX_PIXELS)
    with pytest.raises(BadFrame, match="exceeds max_pixels=1000"):
        image_to_rgb(yuv_message("nv12", reference()), 1000)


# -- Bayer --------------------------------------------------------------------------------------------------------
PATTERNS = ["rggb", "bggr", "gbrg", "grbg"]


def bayer_message(pattern: str, rgb: np.ndarray, depth: int = 8, big: bool = False, pad: int = 0):
    cells = mosaic(rgb, pattern)
    if depth == 16:
        cells = (cells.astype(np.uint16) * 257).astype(">u2" if big else "<u2")
    return message(f"bayer_{pattern}{depth}", cells, big=big, pad=pad)


@pytest.mark.parametrize("depth, big", [(8, False), (16, False), (16, True)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_bayer_pattern_gives_the_colours_it_was_made_from(pattern, depth, big) -> None:
    """Flat patches (2 pixels in from their edges, out of reach of a 3x3 demosaic) and linear ramps within
    BAYER_TOL; a red patch stays red, a blue one blue (the check that catches OpenCV's offset pattern names)."""
    rgb = reference()
    decoded = image_to_rgb(bayer_message(pattern, rgb, depth, big), MAX_PIXELS).astype(int)
    for name, area in patches(2).items():
        assert np.abs(decoded[area] - rgb[area]).max() <= BAYER_TOL, (name, decoded[area][0, 0], COLOURS[name])
    for name, channel in (("red", 0), ("green", 1), ("blue", 2)):
        mean = decoded[patches(2)[name]].reshape(-1, 3).mean(axis=0)
        assert mean.argmax() == channel and mean[channel] > 150 and np.delete(mean, channel).max() < 60, (name, mean)
    flat = ramps(2)
    assert flat.sum() > 500 and np.abs(decoded[flat] - rgb[flat]).max() <= BAYER_TOL


def test_bayer_padded_rows_are_skipped() -> None:
    rgb = reference()
    for pattern, depth, pad in (("grbg", 8, 3), ("bggr", 16, 4), ("rggb", 16, 3)):  # 3: 16-bit rows at odd bytes
        plain = image_to_rgb(bayer_message(pattern, rgb, depth), MAX_PIXELS)
        assert np.array_equal(image_to_rgb(bayer_message(pattern, rgb, depth, pad=pad), MAX_PIXELS), plain), pattern
    for encoding in ("mono16", "rgb16"):  # odd steps for 16-bit RGB and mono too
        samples = packed(rgb, encoding).reshape(HEIGHT, -1)
        assert np.array_equal(image_to_rgb(message(encoding, samples, pad=1), MAX_PIXELS), packed(rgb, "rgb8")
                              if encoding == "rgb16" else np.repeat(gray(rgb)[..., None], 3, axis=2))  # fmt: skip
    wrong = bayer_message("rggb", rgb, 16)
    wrong.step = WIDTH  # a byte per pixel where 16 bits need two
    with pytest.raises(BadFrame, match="step 64 is smaller than width x bytes per pixel = 128"):
        image_to_rgb(wrong, MAX_PIXELS)


# -- refused ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "8UC3", "64FC1", "bayer_rggb32", "yuv420", "jpeg", ""])
def test_float_depth_and_unknown_encodings_are_refused_by_name(encoding) -> None:
    msg = message(encoding, np.zeros((HEIGHT, WIDTH * 4), np.uint8))
    with pytest.raises(UnsupportedEncoding) as refused:
        image_to_rgb(msg, MAX_PIXELS)
    assert isinstance(refused.value, BadFrame) and refused.value.encoding == encoding
    message_text = str(refused.value)
    assert message_text.startswith(f"unsupported encoding {encoding!r}; supported: rgb8, bgr8")
    for name in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv", "nv12", "nv21", "bayer_rggb8", "bayer_grbg16", "mono16"):
        assert name in message_text


def test_every_supported_encoding_is_tested_here() -> None:
    tested = set(EXACT) | set(YUV) | {f"bayer_{p}{d}" for p in PATTERNS for d in (8, 16)}
    assert tested == set(RAW_ENCODINGS)


# -- the node -----------------------------------------------------------------------------------------------------
def test_the_node_stops_on_an_unreadable_encoding_says_it_once_per_encoding_and_reports_error() -> None:
    """SteeringNode._work on a fake node (no ROS graph): each such frame is bad and answered by a zero-speed command;
    one error line per encoding (again after it changes, not per frame); the diagnostics level is ERROR naming it
    (not 'waiting for the first camera frame'), until a frame decodes."""
    import threading
    from types import SimpleNamespace

    from qattn_ros.ros.steering_node import SteeringNode
    from qattn_ros.rules.command_gate import STOP, Camera, Lifecycle
    from qattn_ros.rules.node_status import ERROR, WARN, FrameWindow, status_of

    logged, published = [], []
    logger = SimpleNamespace(error=lambda text, **_: logged.append(("error", text)),
                             warning=lambda text, **_: logged.append(("warning", text)))  # fmt: skip
    node = SimpleNamespace(window=FrameWindow(), lock=threading.Lock(), gate=SimpleNamespace(commanding=True),
                           camera_note="", camera_refused=False, get_logger=lambda: logger,
                           _publish_command=lambda stamp, command: published.append((stamp.sec, command)))  # fmt: skip
    node._note_camera = lambda *args, **kwargs: SteeringNode._note_camera(node, *args, **kwargs)

    def process(msg, epoch) -> bool:  # as _process: decode, then the (here: fitting) camera geometry
        image_to_rgb(msg, MAX_PIXELS)
        node._note_camera("")
        return True

    node._process = process
    good = message("rgb8", reference().reshape(HEIGHT, -1))
    frames = [
        message(encoding, np.zeros((HEIGHT, WIDTH * 4), np.uint8)) for encoding in ("32FC1",) * 3 + ("16UC1",) * 2
    ]
    for second, frame in enumerate(frames):
        frame.header.stamp.sec = second
    good.header.stamp.sec = 5
    statuses = []

    def run(items) -> None:
        queue = [(frame, 0.0, 0) for frame in items] + [None]
        node.slot = SimpleNamespace(take=lambda: queue.pop(0))
        SteeringNode._work(node)
        counts = node.window.swap().counts
        statuses.append(
            status_of(Lifecycle.ACTIVE, True, Camera.WAITING, counts, node.camera_note, node.camera_refused)
        )

    run(frames[:3])
    run(frames[3:])
    run([good])
    run(frames[:1])
    assert [text.split(";")[0] for _, text in logged] == [
        "camera refused: unsupported encoding '32FC1'", "camera refused: unsupported encoding '16UC1'",
        "camera refused: unsupported encoding '32FC1'"]  # fmt: skip
    assert all(level == "error" and "supported: rgb8, bgr8" in text for level, text in logged)
    assert published == [(0, STOP), (1, STOP), (2, STOP), (3, STOP), (4, STOP), (0, STOP)]
    assert node.window.totals["bad"] == 6 and node.window.totals["frames_out"] == 1
    assert [level for level, _ in statuses] == [ERROR, ERROR, WARN, ERROR]
    assert statuses[0][1].startswith("camera refused: unsupported encoding '32FC1'; supported: rgb8")
    assert statuses[1][1].startswith("camera refused: unsupported encoding '16UC1'")
    assert statuses[2][1] == "waiting for the first camera frame"  # (the fake gate's camera: a decoded frame clears)

    node.gate.commanding = False  # not commanding (inactive, paused): nothing published, still said
    run(frames[3:4])
    assert len(published) == 6 and logged[-1][1].startswith("camera refused: unsupported encoding '16UC1'")
