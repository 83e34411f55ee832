"""Policy configs: frozen dataclasses validated on construction, with a JSON round trip.

``PolicyConfig`` declares the observation and action shapes once (``state_dim``, ``action_dim``,
``cameras``, ``image_size``, ``instructions``); encoders, heads, the normalizer and checkpoints all
read them from here. ``DiffusionConfig`` and ``FlowConfig`` add what their sampler needs.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robot_rl.core.errors import ConfigError
from robot_rl.policies.tokenizer import SPECIALS, build_vocab, words

NORM_MODES = ("min_max", "mean_std")
HEADS = ("unet", "transformer")
_CAMERA = re.compile(r"[A-Za-z0-9_]+")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(owner: str, **values: float) -> None:
    for name, v in values.items():
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        _require(number and v > 0, f"{owner}.{name} must be a number > 0, got {v!r}")


@dataclass(frozen=True)
class VisionConfig:
    """Per-camera CNN with spatial-softmax keypoints (Levine et al. 2016)."""

    crop: tuple[int, int] = (76, 76)  # (H, W) random crop in training, center crop in eval
    channels: tuple[int, ...] = (32, 64, 64)  # conv widths; the first two convs have stride 2
    keypoints: int = 32  # spatial-softmax maps, each giving an expected (x, y)
    features: int = 64  # output features per camera and frame
    groups: int = 8  # GroupNorm groups (BatchNorm breaks with EMA and small batches)

    def __post_init__(self) -> None:
        _positive("vision", keypoints=self.keypoints, features=self.features, groups=self.groups)
        _require(
            len(self.crop) == 2 and min(self.crop) > 0,
            f"vision.crop must be (H, W) > 0, got {self.crop!r}",
        )
        _require(
            len(self.channels) > 0 and all(c % self.groups == 0 for c in self.channels),
            f"vision.channels must be non-empty multiples of groups={self.groups}, "
            f"got {self.channels!r}",
        )


@dataclass(frozen=True)
class TextConfig:
    """Instruction encoder trained from scratch: embeddings + a small transformer + mean pool."""

    vocab: tuple[str, ...] = ()  # built from `instructions` when left empty; saved with the config
    max_len: int = 16  # tokens per instruction, <bos> included
    dim: int = 64  # embedding width and output features
    layers: int = 1
    heads: int = 4

    def __post_init__(self) -> None:
        _positive("text", max_len=self.max_len, dim=self.dim, layers=self.layers, heads=self.heads)
        _require(
            self.dim % self.heads == 0,
            f"text.dim={self.dim} must be a multiple of text.heads={self.heads}",
        )
        _require(
            not self.vocab or tuple(self.vocab[: len(SPECIALS)]) == SPECIALS,
            f"text.vocab must start with {SPECIALS!r}, got {tuple(self.vocab[:3])!r}",
        )


@dataclass(frozen=True)
class UNetConfig:
    """1D temporal conv UNet with FiLM conditioning (Chi et al. 2023, ConditionalUnet1D idea)."""

    down_dims: tuple[int, ...] = (64, 128, 256)  # widths per resolution; T halves between them
    kernel_size: int = 5
    groups: int = 8
    time_dim: int = 128  # sinusoidal timestep embedding width

    def __post_init__(self) -> None:
        _positive("unet", kernel_size=self.kernel_size, groups=self.groups, time_dim=self.time_dim)
        _require(self.kernel_size % 2 == 1, f"unet.kernel_size must be odd, got {self.kernel_size}")
        _require(
            len(self.down_dims) > 0 and all(d % self.groups == 0 for d in self.down_dims),
            f"unet.down_dims must be non-empty multiples of groups={self.groups}, "
            f"got {self.down_dims!r}",
        )


@dataclass(frozen=True)
class TransformerConfig:
    """Action-expert transformer: noisy action tokens (+ time) after a conditioning prefix token."""

    dim: int = 256
    layers: int = 6
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    time_dim: int = 128

    def __post_init__(self) -> None:
        _positive(
            "transformer", dim=self.dim, layers=self.layers, heads=self.heads, ff_mult=self.ff_mult
        )
        _require(
            self.dim % self.heads == 0,
            f"transformer.dim={self.dim} must be a multiple of heads={self.heads}",
        )
        _require(
            0.0 <= self.dropout < 1.0,
            f"transformer.dropout must be in [0, 1), got {self.dropout!r}",
        )


@dataclass(frozen=True)
class EMAConfig:
    """EMA of the weights used for evaluation: decay ``1 - (1 + step)^-power``, capped."""

    power: float = 0.75
    max_decay: float = 0.9999

    def __post_init__(self) -> None:
        _require(self.power > 0.0, f"ema.power must be > 0, got {self.power!r}")
        _require(
            0.0 <= self.max_decay < 1.0, f"ema.max_decay must be in [0, 1), got {self.max_decay!r}"
        )


@dataclass(frozen=True)
class PolicyConfig:
    """Shapes and modules shared by every policy. Chunks: see ``obs_horizon``/``horizon``."""

    state_dim: int  # D: proprio state features
    action_dim: int  # A: action features
    task: str = ""  # task name the policy was trained for (checked on load)
    state_names: tuple[str, ...] = ()  # the env/dataset state entries read, in order; () = all
    obs_horizon: int = 2  # To: observation frames per prediction
    horizon: int = 16  # T: predicted action chunk length
    action_steps: int = 8  # Ta: steps a runner executes before replanning (<= T)
    cameras: tuple[str, ...] = ()  # camera names; batch key observation.images.<cam>
    image_size: tuple[int, int] = (84, 84)  # (H, W) of incoming uint8 frames
    instructions: tuple[str, ...] = ()  # task_index -> instruction; empty disables language
    head: str = "unet"  # unet | transformer
    state_hidden: int = 128  # state MLP hidden width
    state_features: int = 64  # state MLP output per frame
    state_norm: str = "min_max"  # min_max ([-1, 1]) | mean_std
    action_norm: str = "min_max"
    ema: EMAConfig = field(default_factory=EMAConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _positive("policy", state_dim=self.state_dim, action_dim=self.action_dim)
        _positive("policy", obs_horizon=self.obs_horizon, horizon=self.horizon)
        _positive("policy", state_hidden=self.state_hidden, state_features=self.state_features)
        _require(
            1 <= self.action_steps <= self.horizon,
            f"action_steps must be in [1, horizon={self.horizon}], got {self.action_steps}",
        )
        _require(self.head in HEADS, f"head must be one of {HEADS}, got {self.head!r}")
        _require(
            not self.state_names or len(self.state_names) == self.state_dim,
            f"state_names names {len(self.state_names)} entries, state_dim is {self.state_dim}",
        )
        for key in ("state_norm", "action_norm"):
            mode = getattr(self, key)
            _require(mode in NORM_MODES, f"{key} must be one of {NORM_MODES}, got {mode!r}")
        for cam in self.cameras:
            _require(
                bool(_CAMERA.fullmatch(cam)), f"camera names must match [A-Za-z0-9_]+, got {cam!r}"
            )
        _require(len(set(self.cameras)) == len(self.cameras), f"cameras repeat: {self.cameras!r}")
        h, w = self.image_size
        ch, cw = self.vision.crop
        if self.cameras:
            _require(
                ch <= h and cw <= w,
                f"vision.crop {self.vision.crop!r} is larger than image_size {self.image_size!r}",
            )
        for i, text in enumerate(self.instructions):
            _require(bool(words(text)), f"instructions[{i}] has no words: {text!r}")
        if self.instructions and not self.text.vocab:
            # A derived default, resolved once so that config.json records the vocabulary used.
            object.__setattr__(
                self, "text", dataclasses.replace(self.text, vocab=build_vocab(self.instructions))
            )
        if self.head == "unet":
            factor = 2 ** (len(self.unet.down_dims) - 1)
            _require(
                self.horizon % factor == 0,
                f"horizon={self.horizon} must be a multiple of {factor} "
                f"for unet.down_dims={self.unet.down_dims!r}",
            )

    @property
    def uses_text(self) -> bool:
        return bool(self.instructions)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for ``json.dumps`` (tuples are written as lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`, also reading ``configs/policy/<name>.yaml`` (plus the
        dataset's shapes); unknown keys raise ``ConfigError`` naming them."""
        data = dict(data)
        name = data.pop("name", cls.name)
        if name != cls.name:
            raise ConfigError(f"{cls.__name__} reads policy name {cls.name!r}, got {name!r}")
        return _build(cls, data, cls.__name__)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {where} keys {unknown}; known are {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a missing required field
        raise ConfigError(f"{where}: {e}") from None


@dataclass(frozen=True)
class NoiseSchedulerConfig:
    """The forward (noising) process, shared by the DDPM trainer and the DDIM/DDPM sampler."""

    train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"  # squaredcos_cap_v2 | linear | scaled_linear
    prediction_type: str = "epsilon"  # epsilon | sample
    clip_sample: bool = True  # clip predicted x0 to [-1, 1] (actions are min-max normalized)

    def __post_init__(self) -> None:
        _positive("noise_scheduler", train_timesteps=self.train_timesteps)
        schedules = ("squaredcos_cap_v2", "linear", "scaled_linear")
        _require(
            self.beta_schedule in schedules,
            f"noise_scheduler.beta_schedule must be one of {schedules}, got {self.beta_schedule!r}",
        )
        _require(
            self.prediction_type in ("epsilon", "sample"),
            f"noise_scheduler.prediction_type must be epsilon or sample, "
            f"got {self.prediction_type!r}",
        )


@dataclass(frozen=True)
class DiffusionConfig(PolicyConfig):
    """DDPM training / DDIM (trailing spacing) or DDPM inference (diffusion_policy defaults)."""

    noise_scheduler: NoiseSchedulerConfig = field(default_factory=NoiseSchedulerConfig)
    sampler: str = "ddim"  # ddim | ddpm
    inference_steps: int = 10  # 1..train_timesteps

    name: ClassVar[str] = "diffusion"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.sampler in ("ddim", "ddpm"), f"sampler must be ddim or ddpm, got {self.sampler!r}"
        )
        n = self.noise_scheduler.train_timesteps
        _require(
            1 <= self.inference_steps <= n,
            f"inference_steps must be in [1, {n}], got {self.inference_steps}",
        )


@dataclass(frozen=True)
class FlowConfig(PolicyConfig):
    """Flow matching with pi0 conventions: t ~ Beta(a, b)*(1 - t_min) + t_min, t = 1 is noise."""

    time_beta: tuple[float, float] = (1.5, 1.0)
    time_min: float = 0.001
    integration_steps: int = 10  # Euler steps from t = 1 to t = 0

    name: ClassVar[str] = "flow"

    def __post_init__(self) -> None:
        super().__post_init__()
        a, b = self.time_beta
        _require(a > 0 and b > 0, f"time_beta must be two positive numbers, got {self.time_beta!r}")
        _require(0.0 <= self.time_min < 1.0, f"time_min must be in [0, 1), got {self.time_min!r}")
        _require(
            self.integration_steps >= 1,
            f"integration_steps must be >= 1, got {self.integration_steps}",
        )
        _require(
            math.isfinite(a) and math.isfinite(b),
            f"time_beta must be finite, got {self.time_beta!r}",
        )
