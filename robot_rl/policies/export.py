"""Export of the denoising network (encoder + head) for runtimes without the Python policy code.

Two formats, both needing nothing beyond torch (ONNX would add the onnx package):
``export_torchscript`` (``torch.jit.trace``; loadable from C++ libtorch, but deprecated upstream
as of torch 2.13) and ``export_program`` (``torch.export``, its successor, with a dynamic batch
dimension). The exported function is one denoising step from raw observations:

    out = f(noisy (B, T, A), timestep (B,) float, state (B, To, D) normalized,
            *frames per camera in config order (B, To, 3, H, W) uint8, [tokens (B, L) int64])

Sampling loops, normalization and the scheduler stay on the caller's side; they are a few lines
of arithmetic. The traced graph is the eval-mode network (center crop, no dropout).
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from robot_rl.policies.network import DenoisingNet
from robot_rl.policies.policy import Policy


class FlatDenoiser(nn.Module):
    """``DenoisingNet`` with positional tensor arguments only (what tracing and runtimes want)."""

    def __init__(self, net: DenoisingNet, cameras: tuple[str, ...], uses_text: bool) -> None:
        super().__init__()
        self.net, self.cameras, self.uses_text = net, cameras, uses_text

    def forward(
        self, noisy: torch.Tensor, timestep: torch.Tensor, state: torch.Tensor, *rest: torch.Tensor
    ) -> torch.Tensor:
        images = dict(zip(self.cameras, rest[: len(self.cameras)]))
        tokens = rest[len(self.cameras)] if self.uses_text else None
        return self.net(noisy, timestep, state, images, tokens)


def example_inputs(policy: Policy, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs in the exported argument order, on the policy's device."""
    cfg = policy.config
    g = torch.Generator().manual_seed(seed)
    device = policy.ema_step.device
    h, w = cfg.image_size
    inputs = [
        torch.randn(batch_size, cfg.horizon, cfg.action_dim, generator=g),
        torch.rand(batch_size, generator=g) * 99.0,
        torch.randn(batch_size, cfg.obs_horizon, cfg.state_dim, generator=g),
    ]
    inputs += [
        torch.randint(
            0, 256, (batch_size, cfg.obs_horizon, 3, h, w), generator=g, dtype=torch.uint8
        )
        for _ in cfg.cameras
    ]
    if cfg.uses_text:
        task = torch.randint(0, len(cfg.instructions), (batch_size,), generator=g)
        inputs.append(policy.task_tokens.cpu()[task])
    return tuple(x.to(device) for x in inputs)


def export_torchscript(
    policy: Policy,
    path: str | os.PathLike | None = None,
    *,
    batch_size: int = 1,
    use_ema: bool = True,
) -> torch.jit.ScriptModule:
    """Trace the policy's evaluation network (EMA unless ``use_ema=False``) and save it to ``path``
    (``torch.jit.save``) when given. Returns the traced module."""
    net = policy.eval_net if use_ema else policy.net
    flat = FlatDenoiser(net, tuple(policy.config.cameras), policy.config.uses_text)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The traced branches are shape checks against the config: constants by design.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(flat, example_inputs(policy, batch_size))
    finally:
        net.train(was_training)
    if path is not None:
        torch.jit.save(traced, str(path))
    return traced


def export_program(
    policy: Policy, path: str | os.PathLike | None = None, *, use_ema: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export`` the evaluation network with a dynamic batch size (1..4096) and save it
    with ``torch.export.save`` when ``path`` is given. Returns the exported program."""
    net = policy.eval_net if use_ema else policy.net
    flat = FlatDenoiser(net, tuple(policy.config.cameras), policy.config.uses_text)
    inputs = example_inputs(policy, 2)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = ({0: batch}, {0: batch}, {0: batch}, tuple({0: batch} for _ in inputs[3:]))
    was_training = net.training
    net.eval()
    try:
        program = torch.export.export(flat, inputs, dynamic_shapes=dynamic)
    finally:
        net.train(was_training)
    if path is not None:
        torch.export.save(program, str(path))
    return program
