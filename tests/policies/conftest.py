"""Small policy configs so that tests build and train in seconds on two CPU cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.policies import (
    DiffusionConfig,
    FlowConfig,
    TextConfig,
    TransformerConfig,
    UNetConfig,
    VisionConfig,
)

TINY_UNET = UNetConfig(down_dims=(16, 32), kernel_size=3, time_dim=16)
TINY_TRANSFORMER = TransformerConfig(dim=32, layers=2, heads=4, time_dim=16)
TINY_VISION = VisionConfig(crop=(28, 28), channels=(8, 16), keypoints=8, features=16)
TINY_TEXT = TextConfig(max_len=8, dim=16, layers=1, heads=2)


def tiny_config(kind: str = "diffusion", **overrides):
    """A few-thousand-parameter config; ``overrides`` replace any field."""
    base = {
        "state_dim": 3,
        "action_dim": 2,
        "horizon": 8,
        "action_steps": 4,
        "image_size": (32, 32),
        "state_hidden": 32,
        "state_features": 16,
        "unet": TINY_UNET,
        "transformer": TINY_TRANSFORMER,
        "vision": TINY_VISION,
        "text": TINY_TEXT,
    }
    base.update(overrides)
    return DiffusionConfig(**base) if kind == "diffusion" else FlowConfig(**base)


def stats_for(dim: int, lo: float = -2.0, hi: float = 3.0) -> dict[str, np.ndarray]:
    return {
        "min": np.full(dim, lo),
        "max": np.full(dim, hi),
        "mean": np.full(dim, (lo + hi) / 2),
        "std": np.full(dim, (hi - lo) / 4),
    }


def random_batch(config, batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A window-sampler-shaped batch for ``config``."""
    g = torch.Generator().manual_seed(seed)
    out = {
        "observation.state": torch.randn(batch, config.obs_horizon, config.state_dim, generator=g),
        "action": torch.rand(batch, config.horizon, config.action_dim, generator=g) * 2 - 1,
        "action_is_pad": torch.zeros(batch, config.horizon, dtype=torch.bool),
        "task_index": torch.randint(0, max(len(config.instructions), 1), (batch,), generator=g),
    }
    h, w = config.image_size
    for cam in config.cameras:
        shape = (batch, config.obs_horizon, 3, h, w)
        out[f"observation.images.{cam}"] = torch.randint(
            0, 256, shape, generator=g, dtype=torch.uint8
        )
    return out


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # One intra-op thread: these models are too small to gain from more, and under
    # `pytest -n 2` on two cores, two threads per worker made OpenMP spin and the suite 6x slower.
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
