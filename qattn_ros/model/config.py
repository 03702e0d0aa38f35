"""Model configuration: one dataclass, validated from a YAML mapping."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..core.config_mapping import from_mapping
from ..core.errors import ConfigError
from .quantizer import MAX_BITS

VARIANTS = ("pilotnet", "kim_canny", "quant_all", "quant_sign", "binary_sign")
REGULARIZERS = ("none", "entropy", "doubly_stochastic")


@dataclass
class ModelConfig:
    variant: str = "quant_sign"
    bits: int = 2
    rest_dropout: float = 0.0
    input_height: int = 80
    input_width: int = 160
    attention_dim: int = 64
    recurrent: bool = False
    hidden_dim: int = 64
    regularizer: str = "entropy"
    reg_weight: float = 0.0
    head_dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant: unknown variant {self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_BITS:
            raise ConfigError(f"model.bits: bit width must be an integer in 1..{MAX_BITS}, got {self.bits!r}")
        if self.variant == "binary_sign":  # 1 bit by definition, whatever a shared config says (checked above)
            self.bits = 1
        if self.variant == "quant_sign" and self.bits < 2:
            raise ConfigError("model.bits: quant_sign needs bits >= 2 (use binary_sign for 1 bit)")
        if not 0.0 <= self.rest_dropout < 1.0:
            raise ConfigError(f"model.rest_dropout: must be in [0, 1), got {self.rest_dropout}")
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(
                f"model.regularizer: unknown {self.regularizer!r}; expected one of {', '.join(REGULARIZERS)}"
            )
        if self.input_height % 8 or self.input_width % 8:
            raise ConfigError("model.input_height/input_width: must be multiples of 8")

    @property
    def has_attention(self) -> bool:
        return self.variant != "pilotnet"

    @property
    def quantized(self) -> bool:
        return self.variant in ("quant_all", "quant_sign", "binary_sign")

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return from_mapping(cls, data, "model")

    def to_dict(self) -> dict:
        return asdict(self)
