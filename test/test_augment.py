import pytest
import torch

from qattn_ros.fit.augment import augment
from qattn_ros.fit.config import AugmentConfig


def _batch():
    torch.manual_seed(0)
    return torch.rand(16, 3, 8, 12), torch.linspace(-1, 1, 16)


def test_flip_mirrors_images_and_negates_labels() -> None:
    images, targets = _batch()
    out, y = augment(images, targets, AugmentConfig(flip=1.0, brightness=0.0), "yuv", torch.Generator().manual_seed(0))
    assert torch.equal(out, images.flip(-1)) and torch.equal(y, -targets)


def test_shift_moves_content_and_corrects_the_label() -> None:
    images, targets = _batch()
    config = AugmentConfig(flip=0.0, brightness=0.0, shift_px=3, shift_label_per_px=0.01)
    out, y = augment(images, targets, config, "yuv", torch.Generator().manual_seed(1))
    shifts = torch.round((y - targets) / 0.01).long()
    assert shifts.abs().max() <= 3 and len(shifts.unique()) > 1
    for i, s in enumerate(shifts.tolist()):
        if s >= 0:
            assert torch.equal(out[i, ..., s:], images[i, ..., : 12 - s])
            assert torch.equal(out[i, ..., :s], images[i, ..., :1].expand(-1, -1, s))
        else:
            assert torch.equal(out[i, ..., : 12 + s], images[i, ..., -s:])


@pytest.mark.parametrize("color, scaled", [("yuv", [0]), ("hsv", [2]), ("rgb", [0, 1, 2])])
def test_brightness_scales_exactly_the_brightness_channels(color: str, scaled: list[int]) -> None:
    """One factor per image from [1 - b, 1 + b] on the brightness channels (Y, V, or all of RGB), the rest untouched."""
    images, targets = _batch()
    images = images * 0.5  # headroom: no clipping at 1
    out, y = augment(images, targets, AugmentConfig(flip=0.0, brightness=0.3), color, torch.Generator().manual_seed(3))
    others = [c for c in range(3) if c not in scaled]
    assert torch.equal(out[:, others], images[:, others]) and torch.equal(y, targets)
    ratio = out[:, scaled] / images[:, scaled]
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5), "one factor per image"
    factors = per_image[:, 0]
    assert factors.min() >= 0.7 - 1e-6 and factors.max() <= 1.3 + 1e-6
    assert factors.max() - factors.min() > 0.2 and (factors - 1).abs().max() > 0.1, "the brightness really changes"


def test_brightness_clips_at_white() -> None:
    images = torch.full((64, 3, 2, 2), 0.9)
    out, _ = augment(images, torch.zeros(64), AugmentConfig(flip=0.0, brightness=0.3), "rgb",
                     torch.Generator().manual_seed(0))  # fmt: skip
    assert out.max() == 1.0 and out.min() >= 0.9 * 0.7 - 1e-6
