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


def test_brightness_scales_only_the_brightness_channel() -> None:
    images, targets = _batch()
    out, y = augment(images * 0.5, targets, AugmentConfig(flip=0.0, brightness=0.3), "yuv", torch.Generator())
    assert torch.equal(out[:, 1:], images[:, 1:] * 0.5) and torch.equal(y, targets)
    ratio = out[:, 0] / (images[:, 0] * 0.5)
    assert ratio.min() >= 0.7 - 1e-6 and ratio.max() <= 1.3 + 1e-6
