"""Exports of the denoising network (TorchScript, torch.export) match eager PyTorch."""

from __future__ import annotations

import shutil

import pytest
import torch

from robot_rl.policies import DiffusionPolicy, FlowPolicy, export_program, export_torchscript
from robot_rl.policies.export import example_inputs

from .conftest import random_batch, tiny_config


def run_eager(policy, inputs):
    noisy, timestep, state, *rest = inputs
    cameras = policy.config.cameras
    images = dict(zip(cameras, rest[: len(cameras)]))
    tokens = rest[len(cameras)] if policy.config.uses_text else None
    return policy.eval_net(noisy, timestep, state, images, tokens)


# torch 2.13 marks torch.jit.trace/save/load deprecated (torch.export below is the successor); the
# TorchScript path stays because C++ libtorch runtimes still load it.
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        (DiffusionPolicy, {"cameras": ("front", "wrist"), "instructions": ("open it", "close it")}),
        (FlowPolicy, {"head": "transformer", "instructions": ("fold the towel",)}),
        (FlowPolicy, {}),
    ],
)
def test_traced_network_matches_eager(tmp_path, cls, overrides):
    policy = cls(tiny_config(cls.config_class.name, **overrides))
    loss, _ = policy.compute_loss(random_batch(policy.config))  # leave training mode behind
    policy.update_ema()
    policy.train()  # export must trace eval mode (center crop) whatever mode the policy is in
    path = tmp_path / "denoiser.pt"
    export_torchscript(policy, path, batch_size=2)
    loaded = torch.jit.load(str(path))
    policy.eval()
    with torch.no_grad():
        for seed, batch in [(1, 2), (2, 2), (3, 5)]:  # fresh inputs, and another batch size
            inputs = example_inputs(policy, batch, seed=seed)
            diff = (loaded(*inputs) - run_eager(policy, inputs)).abs().max().item()
            assert diff <= 1e-4, f"traced vs eager max abs diff {diff:.2e} (batch {batch})"
    assert policy.ema_net.training is False


def test_exported_program_has_a_dynamic_batch(tmp_path):
    policy = DiffusionPolicy(tiny_config(cameras=("front",), instructions=("open it", "shut it")))
    path = tmp_path / "denoiser.pt2"
    export_program(policy, path)
    program = torch.export.load(str(path)).module()
    policy.eval()
    with torch.no_grad():
        for batch in (1, 3):
            inputs = example_inputs(policy, batch, seed=batch)
            diff = (program(*inputs) - run_eager(policy, inputs)).abs().max().item()
            assert diff <= 1e-4, f"exported vs eager max abs diff {diff:.2e} (batch {batch})"


# importing inductor touches torch.jit.script_method, deprecated in torch 2.13
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.script_method` is deprecated:DeprecationWarning")
@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "clang++", "c++")),
    reason="torch.compile (inductor) needs a C++ compiler",
)
@pytest.mark.parametrize("cls", [DiffusionPolicy, FlowPolicy])
def test_compiled_act_matches_eager_and_is_used(cls, monkeypatch):
    import copy

    policy = cls(tiny_config(cls.config_class.name)).eval()
    obs = {"observation.state": torch.randn(1, policy.config.obs_horizon, 3)}
    noise = torch.randn(1, policy.config.horizon, policy.config.action_dim)
    eager = policy.act(obs, noise=noise)
    assert policy.compile_for_inference() is policy
    assert copy.deepcopy(policy)._compiled_steps == {}  # copies start uncompiled

    def eager_step(*args):
        raise AssertionError("the eager head step ran at the compiled batch size")

    for net in (policy.net, policy.ema_net):
        monkeypatch.setattr(net.head, "step", eager_step)
    assert torch.allclose(policy.act(obs, noise=noise), eager, atol=1e-5)
    # Another batch size takes the eager step.
    with pytest.raises(AssertionError, match="eager head step"):
        policy.act({"observation.state": obs["observation.state"].repeat(2, 1, 1)})


def test_failed_compile_is_one_clear_error_and_acting_still_works(monkeypatch):
    policy = FlowPolicy(tiny_config("flow")).eval()

    def broken(fn, **options):
        def run(*args):
            raise RuntimeError("InductorError: C++ compile error\nlong log ...")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(RuntimeError, match=r"compile of the flow policy failed .*C\+\+ compile"):
        policy.compile_for_inference()
    assert not policy._compiled_steps
    obs = {"observation.state": torch.randn(1, policy.config.obs_horizon, 3)}
    assert policy.act(obs).shape == (1, policy.config.horizon, policy.config.action_dim)
