"""Policies: observation encoders, diffusion and flow heads, normalizer, residual actor.

Behavior-cloned "VLA" policies map (proprio state, camera frames, instruction) to an action chunk:

- :class:`DiffusionPolicy` — DDPM training, DDIM / DDPM sampling (diffusion_policy conventions);
- :class:`FlowPolicy` — flow matching with pi0's conventions, Euler sampling;
- heads: 1D conv UNet with FiLM (``head="unet"``) or a transformer action expert;
- :func:`save` / :func:`load` — checkpoint directories of JSON + safetensors (never pickle);
- :func:`export_torchscript` / :func:`export_program` — the denoising network for runtimes
  without the policy's Python code.

``robot_rl.policies.residual`` holds the residual actor and the critic ensemble that residual RL
(``robot_rl.algos.residual``) trains on top of a frozen policy.
"""

from robot_rl.policies.checkpoint import CheckpointError, load, save
from robot_rl.policies.config import (
    DiffusionConfig,
    EMAConfig,
    FlowConfig,
    NoiseSchedulerConfig,
    PolicyConfig,
    TextConfig,
    TransformerConfig,
    UNetConfig,
    VisionConfig,
)
from robot_rl.policies.diffusion import DiffusionPolicy
from robot_rl.policies.export import export_program, export_torchscript
from robot_rl.policies.flow import FlowPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.policies.observations import BatchError
from robot_rl.policies.policy import POLICIES, Policy

__all__ = [
    "POLICIES",
    "BatchError",
    "CheckpointError",
    "DiffusionConfig",
    "DiffusionPolicy",
    "EMAConfig",
    "FlowConfig",
    "FlowPolicy",
    "NoiseSchedulerConfig",
    "Normalizer",
    "Policy",
    "PolicyConfig",
    "TextConfig",
    "TransformerConfig",
    "UNetConfig",
    "VisionConfig",
    "export_program",
    "export_torchscript",
    "load",
    "save",
]
