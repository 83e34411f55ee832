"""Batch-1 action-chunk latency of the ~5M-parameter policies on CPU, ours next to an anchor.

    python bench/policy_latency.py --repeats 31 --threads 2

Ours: ``policy.act(obs)`` as the ChunkRunner calls it (observation encoded once, FiLM conditioning
computed once per chunk, small-batch convolutions as one time-major matrix product), eager and
after ``policy.compile_for_inference()`` (the per-step head through ``torch.compile``; what a
ROS 2 policy node is to run; that node arrives with the deployment issue). The targets are checked
on the compiled path; the eager column is what training-time evaluation runs.
Anchor: the same weights run as diffusion_policy's ``predict_action`` does it: encode the
observation once, then call the whole head ``head(x, t, cond)`` at every denoising step (FiLM
conditioning recomputed) with torch's own convolutions, and diffusers' scheduler step.

Repeats alternate eager / compiled / anchor so all see the same machine noise; the table gives
medians and the last line ``ratio_anchor_over_ours`` (anchor over compiled) for the default
diffusion policy at 10 steps.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

import robot_rl.policies.unet1d as unet1d
from robot_rl.policies import DiffusionConfig, DiffusionPolicy, FlowConfig, FlowPolicy, Policy
from robot_rl.policies.diffusion import denoise
from robot_rl.policies.flow import integrate

STATE_DIM, ACTION_DIM = 40, 7
TARGETS_MS = {("state", 10): 35.0, ("state", 1): 5.0, ("camera", 10): 50.0}


def build(kind: str, head: str, camera: bool) -> Policy:
    extra = {"cameras": ("front",)} if camera else {}
    if kind == "diffusion":
        cfg = DiffusionConfig(state_dim=STATE_DIM, action_dim=ACTION_DIM, head=head, **extra)
        return DiffusionPolicy(cfg).eval()
    cfg = FlowConfig(state_dim=STATE_DIM, action_dim=ACTION_DIM, head=head, **extra)
    return FlowPolicy(cfg).eval()


def observation(policy: Policy) -> dict[str, torch.Tensor]:
    cfg = policy.config
    obs = {"observation.state": torch.randn(1, cfg.obs_horizon, STATE_DIM)}
    for cam in cfg.cameras:
        obs[f"observation.images.{cam}"] = torch.randint(
            0, 256, (1, cfg.obs_horizon, 3, *cfg.image_size), dtype=torch.uint8
        )
    return obs


def ours(policy: Policy, obs: dict, steps: int) -> Callable[[], object]:
    return lambda: policy.act(obs, steps=steps)


def anchor(policy: Policy, obs: dict, steps: int) -> Callable[[], object]:
    """Per-step full head calls, torch's convolutions (diffusion_policy's sampling loop)."""
    net, cfg = policy.eval_net, policy.config

    @torch.no_grad()
    def run() -> torch.Tensor:
        saved, unet1d.SMALL_BATCH = unet1d.SMALL_BATCH, 0
        try:
            images = {c: obs[f"observation.images.{c}"] for c in cfg.cameras}
            state = policy.normalizer.normalize("observation.state", obs["observation.state"])
            cond = net.encoder(state, images, None)
            noise = torch.randn(1, cfg.horizon, cfg.action_dim)

            def head(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return net.head(x, t, cond)

            if isinstance(policy, DiffusionPolicy):
                x = denoise(head, policy.sampler, noise, steps)
            else:
                x = integrate(head, noise, steps)
            return policy.normalizer.unnormalize("action", x)
        finally:
            unet1d.SMALL_BATCH = saved

    return run


def time_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cases = [
        ("diffusion", "unet", False, 10),
        ("diffusion", "unet", False, 1),
        ("flow", "unet", False, 10),
        ("flow", "unet", False, 1),
        ("flow", "transformer", False, 10),
        ("flow", "transformer", False, 1),
        ("diffusion", "unet", True, 10),
        ("flow", "unet", True, 10),
    ]
    load0 = os.getloadavg()
    rows = []
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or 'cpu'}, {os.cpu_count()} logical CPUs, torch "
        f"{torch.__version__}, {args.threads} threads, load avg {load0[0]:.2f}"
    )
    print(
        "| policy | head | input | steps | params | eager (ms) | compiled (ms) | anchor (ms) "
        "| anchor / compiled | target (compiled) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, head, camera, steps in cases:
        policy = build(kind, head, camera)
        obs = observation(policy)
        compiled = copy.deepcopy(policy).compile_for_inference()
        fns = {
            "eager": ours(policy, obs, steps),
            "ours": ours(compiled, obs, steps),
            "anchor": anchor(policy, obs, steps),
        }
        for fn in fns.values():  # warm-up: allocator, oneDNN primitives, scheduler tables
            for _ in range(3):
                fn()
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                samples[k].append(time_ms(fn))
        med = {k: statistics.median(v) for k, v in samples.items()}
        params = sum(p.numel() for p in policy.net.parameters()) / 1e6
        inp = "state + 84x84 camera" if camera else "state"
        target = TARGETS_MS.get(("camera" if camera else "state", steps))
        ok = "" if target is None else f"≤ {target:.0f} {'✓' if med['ours'] <= target else '✗'}"
        ratio = med["anchor"] / med["ours"]
        print(
            f"| {kind} | {head} | {inp} | {steps} | {params:.1f}M | {med['eager']:.1f} | "
            f"{med['ours']:.1f} | {med['anchor']:.1f} | {ratio:.2f} | {ok} |",
            flush=True,
        )
        rows.append(
            {
                "policy": kind,
                "head": head,
                "camera": camera,
                "steps": steps,
                "params_m": params,
                "eager_ms": med["eager"],
                "compiled_ms": med["ours"],
                "anchor_ms": med["anchor"],
                "samples": samples,
            }
        )
    print(f"load avg at end {os.getloadavg()[0]:.2f}")
    print(f"ratio_anchor_over_ours={rows[0]['anchor_ms'] / rows[0]['compiled_ms']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
