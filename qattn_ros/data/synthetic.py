"""Procedural forward-camera road scenes with a steering label and a relevance mask.

A pinhole camera at height h looks along a flat road. The centre of the ego lane at
depth z lies at lateral X = c(z) = -offset + z tan(heading) - curvature z^2 / 2 (X to the
right, curvature > 0 bends left). The label is pure pursuit at look-ahead L: curvature
2 * (-c(L)) / L^2, turned into a front-wheel angle (radians, positive left). The
relevance mask marks what that label depends on: lane markings and road edges between
the near edge of the image and 2 L, where no object hides them.

Every frame is drawn from its own generator seeded with (seed, index): the dataset is the
same whatever the batch size or number of workers. Rendering is vectorized over pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.streams import stream, tag
from ..core.units import DEFAULT_VEHICLE

CAMERA_HEIGHT_M = 1.5
LOOK_AHEAD_M = 12.0
LINE_WIDTH_M = 0.15


@dataclass
class RoadScene:
    """The geometric ground truth of one frame."""

    curvature: float  # 1/m, positive bends left
    offset: float  # m, ego position right of the lane centre
    heading: float  # rad, road direction relative to the car, positive to the right
    lane_width: float  # m
    speed: float  # m/s

    def lane_center(self, z: np.ndarray | float) -> np.ndarray | float:
        return -self.offset + z * math.tan(self.heading) - 0.5 * self.curvature * np.square(z)

    def steering(self) -> float:
        """Front-wheel angle (rad, positive left) that pure pursuit commands."""
        pursuit_curvature = -2.0 * self.lane_center(LOOK_AHEAD_M) / LOOK_AHEAD_M**2
        return math.atan(DEFAULT_VEHICLE.wheelbase * pursuit_curvature)


@dataclass
class SyntheticFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool relevance mask
    scene: RoadScene

    @property
    def steering(self) -> float:
        return self.scene.steering()


class RoadGenerator:
    """Renders frames of size (height, width); horizontal field of view `fov_deg`.

    The class attributes are the markings every training frame has; the simulator's view
    overrides them (and `_shadows`, `_objects`) to show what training never did.
    """

    line_width: float = LINE_WIDTH_M  # m, every marking
    marking_colour: tuple[float, float, float] | None = None  # RGB in [0, 1] for all markings; None: white/yellow
    markings: bool = True  # False: no painted lines, only the asphalt's edge

    def __init__(self, height: int = 160, width: int = 320, fov_deg: float = 70.0, seed: int = 0,
                 purpose: str = "frames") -> None:  # fmt: skip
        if height < 16 or width < 16:
            raise ValueError(f"synthetic frames need at least 16x16 pixels, got {height}x{width}")
        self.height, self.width, self.seed, self.purpose = height, width, seed, purpose
        tag(purpose)  # an unknown purpose is refused here, not at the first frame
        self.focal = (width / 2) / math.tan(math.radians(fov_deg) / 2)
        self.u = np.arange(width, dtype=np.float32) + 0.5 - width / 2
        self.v = np.arange(height, dtype=np.float32)[:, None] + 0.5

    def rng(self, *keys: int) -> np.random.Generator:
        """This generator's stream for `keys`: its purpose and seed first (qattn_ros/core/streams.py)."""
        return stream(self.purpose, self.seed, *keys)

    def scene(self, index: int) -> RoadScene:
        """The road geometry of frame `index`."""
        rng = self.rng(index)
        return RoadScene(
            curvature=float(rng.uniform(-1 / 45, 1 / 45) if rng.random() < 0.8 else 0.0),
            offset=float(rng.uniform(-0.9, 0.9)),
            heading=float(rng.uniform(-0.07, 0.07)),
            lane_width=float(rng.uniform(3.3, 4.0)),
            speed=float(rng.uniform(8.0, 25.0)),
        )

    def frame(self, index: int, camera_shift: float = 0.0) -> SyntheticFrame:
        """Frame `index`; `camera_shift` moves the camera sideways (m, positive right)."""
        scene = self.scene(index)
        return self.render(RoadScene(**{**scene.__dict__, "offset": scene.offset + camera_shift}), index)

    def render(self, scene: RoadScene, index: int) -> SyntheticFrame:
        """`scene` seen with the appearance (textures, light, objects) of frame `index`."""
        look = self.rng(index, 2).random(24).tolist()
        image, mask = self._render(scene, look, self.rng(index, 1))
        return SyntheticFrame(image=image, mask=mask, scene=scene)

    def _render(self, scene: RoadScene, look: list[float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w, f = self.height, self.width, self.focal
        horizon = h * (0.36 + 0.06 * (look[0] - 0.5))
        below = self.v - horizon
        ground = below > 0.5
        z = np.where(ground, f * CAMERA_HEIGHT_M / np.maximum(below, 0.5), 1e6).astype(np.float32)  # (H, 1)
        px = z / f  # metres per pixel at that depth
        x = self.u[None, :] * px  # (H, W) lateral position, right positive
        d = x - scene.lane_center(np.where(ground, z, 0.0)).astype(np.float32)  # lateral distance from lane centre
        lane = scene.lane_width

        def coverage(lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
            """Share of each pixel's footprint [d - px/2, d + px/2] inside [lo, hi]."""
            overlap = np.minimum(hi, d + px / 2) - np.maximum(lo, d - px / 2)
            return np.clip(overlap / px, 0.0, 1.0)

        # Ground: grass, asphalt over [-1.5 lane - shoulder, 0.5 lane + shoulder].
        low_noise = cv2.resize(rng.standard_normal((h // 8 + 1, w // 8 + 1)).astype(np.float32), (w, h))
        fine_noise = rng.standard_normal((h, w)).astype(np.float32)
        grass = np.array([0.25 + 0.15 * look[1], 0.45 + 0.15 * look[2], 0.18 + 0.1 * look[3]], np.float32)
        asphalt = np.full(3, 0.32 + 0.18 * look[4], np.float32)
        shoulder = 0.4 + 0.5 * look[5]
        road = coverage(-1.5 * lane - shoulder, 0.5 * lane + shoulder)[..., None]
        texture = (1 + 0.12 * low_noise + 0.06 * fine_noise)[..., None]
        img = (grass * (1 + 0.1 * low_noise[..., None]) * (1 - road) + asphalt * road) * texture

        # Markings: solid right edge, dashed or solid centre line, solid far-left edge.
        dashed = look[6] < 0.6
        period, duty, phase = 12.0, 0.35, look[7] * 12.0
        dash_on = ((np.where(ground, z, 0.0) + phase) % period) < period * duty if dashed else np.ones_like(z, bool)
        centre_colour = np.array([0.85, 0.7, 0.15] if look[8] < 0.5 else [0.9, 0.9, 0.9], np.float32)
        white = np.array([0.92, 0.92, 0.92], np.float32)
        if self.marking_colour is not None:  # an appearance the training frames never show
            centre_colour = white = np.asarray(self.marking_colour, np.float32)
        half = self.line_width / 2
        lines = [
            (coverage(0.5 * lane - half, 0.5 * lane + half), white),
            (coverage(-0.5 * lane - half, -0.5 * lane + half) * dash_on, centre_colour),
            (coverage(-1.5 * lane - half, -1.5 * lane + half), white),
        ]
        markings = np.zeros((h, w), np.float32)
        for cov, colour in lines if self.markings else []:
            img = img * (1 - cov[..., None]) + colour * cov[..., None]
            markings = np.maximum(markings, cov)

        # Shadows of trees and poles: dark ellipses on the ground.
        shade = np.ones((h, w), np.float32)
        for k, (sx, sz, rx, rz) in enumerate(self._shadows(look, rng)):
            inside = ((x - scene.lane_center(sz) - sx) / rx) ** 2 + ((z - sz) / rz) ** 2 < 1
            shade = np.where(inside, shade * (0.45 + 0.25 * look[10 + k]), shade)
        img = img * shade[..., None]

        # Haze towards the horizon, then the sky.
        sky_top = np.array([0.35, 0.55, 0.85], np.float32) * (0.8 + 0.3 * look[14])
        sky_low = np.array([0.75, 0.82, 0.9], np.float32)
        haze = np.exp(-np.where(ground, z, 1e9) / 160.0)[..., None]
        img = img * haze + sky_low * (1 - haze) * 0.9
        t = np.clip(self.v / max(horizon, 1.0), 0, 1)[..., None]
        sky = sky_top * (1 - t) + sky_low * t + 0.03 * low_noise[..., None]
        img = np.where(ground[..., None], img, sky)

        relevant = (markings > 0.25) | ((road[..., 0] > 0.05) & (road[..., 0] < 0.95))
        relevant &= ground & (z <= 2 * LOOK_AHEAD_M)

        # Objects (trees, an oncoming car), far to near, drawn over ground and sky.
        img = np.clip(img * (0.6 + 0.7 * look[15]), 0, 1)
        canvas = (img * 255).astype(np.uint8)
        occluded = np.zeros((h, w), np.uint8)
        for obj in sorted(self._objects(scene, look, rng), key=lambda o: -o[1]):
            self._draw(canvas, occluded, scene, obj, horizon)
        return canvas, relevant & (occluded == 0)

    def _shadows(self, look: list[float], rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
        """(lateral from lane centre, depth, radius across, radius along) of each shadow, m."""
        return [(rng.uniform(-8, 6), rng.uniform(6, 40), rng.uniform(1.0, 3.5), rng.uniform(1.0, 5.0))
                for _ in range(int(look[9] * 4))]  # fmt: skip

    def _objects(self, scene: RoadScene, look: list[float], rng: np.random.Generator) -> list[tuple]:
        """(kind, z, lateral from lane centre, size, colour) of each object in the frame."""
        objects = []
        lane = scene.lane_width
        for _ in range(int(look[16] * 7)):
            side = 1 if rng.random() < 0.5 else -1
            lateral = 0.5 * lane + rng.uniform(2.5, 12) if side > 0 else -1.5 * lane - rng.uniform(2.5, 12)
            colour = (int(rng.uniform(20, 70)), int(rng.uniform(70, 130)), int(rng.uniform(20, 60)))
            objects.append(("tree", rng.uniform(6, 70), lateral, rng.uniform(4, 9), colour))
        if look[17] < 0.5:
            colour = tuple(int(c) for c in rng.uniform(30, 230, 3))
            objects.append(("car", rng.uniform(12, 60), -lane, 1.8, colour))
        return objects

    def _draw(self, canvas: np.ndarray, occluded: np.ndarray, scene: RoadScene, obj: tuple, horizon: float) -> None:
        kind, z, lateral, size, colour = obj
        f = self.focal
        base_v = horizon + f * CAMERA_HEIGHT_M / z
        centre_u = self.width / 2 + f * (scene.lane_center(z) + lateral) / z
        scale = f / z  # pixels per metre at that depth
        shapes = []
        if kind == "tree":
            trunk_w, trunk_h, radius = 0.35 * scale, 0.35 * size * scale, 0.3 * size * scale
            shapes.append(
                ("rect", (centre_u - trunk_w / 2, base_v - trunk_h, centre_u + trunk_w / 2, base_v), (70, 50, 30))
            )
            shapes.append(("ellipse", (centre_u, base_v - trunk_h - radius * 0.8, radius * 0.8, radius), colour))
        else:
            half_w, height = 0.9 * scale, 1.4 * scale
            shapes.append(("rect", (centre_u - half_w, base_v - height, centre_u + half_w, base_v), colour))
            shapes.append(
                (
                    "rect",
                    (centre_u - 0.8 * half_w, base_v - 0.95 * height, centre_u + 0.8 * half_w, base_v - 0.6 * height),
                    (40, 50, 60),
                )
            )
            shapes.append(
                ("rect", (centre_u - half_w, base_v - 0.15 * height, centre_u + half_w, base_v), (20, 20, 20))
            )
        for shape, geometry, rgb in shapes:
            for target, value in ((canvas, rgb), (occluded, 1)):
                if shape == "rect":
                    x0, y0, x1, y1 = (int(round(c)) for c in geometry)
                    cv2.rectangle(target, (x0, y0), (x1, y1), value, thickness=-1)
                else:
                    cu, cv, ax, ay = geometry
                    cv2.ellipse(target, (int(cu), int(cv)), (max(int(ax), 1), max(int(ay), 1)), 0, 0, 360, value, -1)
