"""The one device picker: what `auto` means, and clear refusals."""

import pytest
import torch

from qattn_ros.core.device import pick_device
from qattn_ros.core.errors import ConfigError


def test_auto_takes_the_first_gpu_where_there_is_one() -> None:
    expected = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    assert pick_device("auto") == expected
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name, message", [("tpu", "expected auto, cpu, cuda or cuda:N"), ("gpu0", "expected auto")])
def test_unknown_devices_are_refused(name, message) -> None:
    with pytest.raises(ConfigError, match=message):
        pick_device(name)


def test_a_gpu_that_is_not_there_is_refused() -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    with pytest.raises(ConfigError, match=f"device={missing}"):
        pick_device(missing)
