"""Offline training: config, augmentation, the (optionally distributed) training loop."""
