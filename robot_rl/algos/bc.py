"""Behaviour cloning of a diffusion / flow policy: the trainer, readable top to bottom.

``train_bc`` samples windows from the dataset(s), steps AdamW with warmup + cosine decay, keeps the
EMA network, logs TensorBoard scalars, evaluates the EMA policy in the batched simulator every
``eval_every`` steps and writes checkpoints (``<out>/checkpoints/last`` and ``best``) that
``resume`` continues exactly: same optimizer moments, EMA, schedule, sampler and RNG state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from robot_rl.algos.bc_data import BCData
from robot_rl.algos.evaluate import EvalResult
from robot_rl.algos.train_state import (
    load_optimizer,
    read_trainer,
    recover_checkpoint,
    save_trainer,
    write_checkpoint,
)
from robot_rl.core.errors import ConfigError, RobotRLError
from robot_rl.policies import POLICIES, CheckpointError, Policy, PolicyConfig, load, save


@dataclass
class BCConfig:
    """Optimisation of behaviour cloning (``configs/algo/bc.yaml``)."""

    name: str = "bc"
    steps: int = 5000  # optimizer steps
    batch_size: int = 64
    lr: float = 5e-4  # AdamW peak learning rate
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)  # diffusion_policy's AdamW betas
    warmup_steps: int = 200  # linear warmup from 0
    lr_schedule: str = "cosine"  # cosine (to 0 at `steps`) | constant
    grad_clip: float = 1.0  # max global grad norm; 0 disables

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"algo.lr must be a finite number > 0, got {self.lr}")
        for key in ("warmup_steps", "grad_clip", "weight_decay"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"algo.{key} must be a finite number >= 0, got {v}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"algo.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(
                f"algo.lr_schedule must be cosine or constant, got {self.lr_schedule!r}"
            )


class TrainingError(RobotRLError):
    """Training diverged (non-finite loss or gradients)."""


def lr_factor(step: int, cfg: BCConfig) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warmup over
    ``warmup_steps``, then constant or half-cosine to 0 at ``steps`` (diffusers' schedule)."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def policy_config(policy_cfg: dict[str, Any], **shapes: Any) -> PolicyConfig:
    """The typed config of policy ``policy_cfg['name']`` from its settings plus ``shapes``
    (``state_dim``, ``action_dim``, ...); any problem is a one-line :class:`ConfigError`."""
    fields = dict(policy_cfg)
    name = fields.pop("name", None)
    if name not in POLICIES:
        raise ConfigError(f"policy name must be one of {POLICIES.names()}, got {name!r}")
    return POLICIES.get(name).config_class.from_dict({**fields, **shapes})


def build_policy(
    policy_cfg: dict[str, Any],
    data: BCData,
    task: str,
    *,
    language: bool | None = None,
) -> Policy:
    """A fresh policy of ``policy_cfg['name']`` shaped by the data: state/action dims, cameras,
    image size, instructions (language when there are several, or when ``language`` says so)."""
    use_text = len(data.instructions) > 1 if language is None else language
    config = policy_config(
        policy_cfg,
        state_dim=data.state_dim,
        action_dim=data.action_dim,
        task=task,
        cameras=list(data.cameras),
        image_size=list(data.image_size),
        instructions=list(data.instructions) if use_text else [],
        state_names=list(data.state_names),
    )
    return POLICIES.get(config.name)(config, stats=data.stats)


Evaluator = Callable[[Policy], dict[str, EvalResult]]
"""Evaluates the (EMA) policy; returns results per task name."""


@dataclass
class TrainRun:
    """Where a run writes and how often it reports."""

    out: Path
    eval_every: int = 1000  # steps between evaluations (0: only at the end)
    save_every: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"


def train_bc(
    policy: Policy,
    data: BCData,
    cfg: BCConfig,
    run: TrainRun,
    *,
    evaluate: Evaluator | None = None,
    resume: Path | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train ``policy`` on ``data``; returns the final summary (also ``<out>/train_summary.json``).

    ``progress(step, scalars)`` is called after every optimizer step.
    """
    from torch.utils.tensorboard import SummaryWriter

    device = torch.device(run.device)
    policy.to(device).train()
    optim = torch.optim.AdamW(
        policy.trainable_parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    gen = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)  # the noise and augmentation inside compute_loss
    step, best, history, loss_curve = 0, -1.0, [], []
    order = torch.empty(0, dtype=torch.int64)
    if resume is not None:
        meta = _resume(policy, optim, resume, gen, len(data))
        step, best = int(meta["step"]), float(meta.get("best_success", -1.0))
        history, loss_curve = list(meta.get("history", [])), list(meta.get("loss_curve", []))
        order = torch.tensor(meta.get("order", []), dtype=torch.int64)

    ckpt_dir = run.out / "checkpoints"
    tb = SummaryWriter(log_dir=str(run.out / "tb"), purge_step=step or None)
    (run.out).mkdir(parents=True, exist_ok=True)
    (run.out / "train_config.json").write_text(
        json.dumps({"algo": asdict(cfg), "policy": policy.config.to_dict()}, indent=2) + "\n"
    )

    def checkpoint(name: str) -> None:
        meta = {
            "step": step,
            "best_success": best,
            "history": history,
            "loss_curve": loss_curve,
            "seed": run.seed,
            # the sampler's and the loss noise's RNG and the rest of the epoch: resume is exact
            "rng": gen.get_state().tolist(),
            "torch_rng": torch.get_rng_state().tolist(),
            "cuda_rng": [r.tolist() for r in torch.cuda.get_rng_state_all()]
            if device.type == "cuda"
            else None,
            "order": order.tolist(),
            "samples": len(data),
        }

        def write(tmp: Path) -> None:
            save(policy, tmp)
            save_trainer(tmp, optim, meta)

        write_checkpoint(ckpt_dir / name, write)

    start, losses = time.perf_counter(), []
    try:
        while step < cfg.steps:
            if len(order) < cfg.batch_size:  # epochs of shuffled windows, without replacement
                order = torch.cat([order, torch.randperm(len(data), generator=gen)])
            idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
            batch = {k: v.to(device, non_blocking=True) for k, v in data.sample(idx).items()}
            for group in optim.param_groups:  # a function of the step alone, so resume is exact
                group["lr"] = cfg.lr * lr_factor(step, cfg)
            loss, info = policy.compute_loss(batch)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            # with grad_clip 0 the norm is still measured (clipping at inf changes nothing)
            clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(list(policy.trainable_parameters()), clip)
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                # before the step and any save: checkpoints/last keeps the last good weights
                raise TrainingError(
                    f"step {step + 1}: loss {loss.item()} / grad norm {float(grad_norm)} is not "
                    f"finite; lower algo.lr or resume from {ckpt_dir / 'last'}"
                )
            optim.step()
            policy.update_ema()
            step += 1
            losses.append(float(info["loss"]))
            scalars = {"loss": losses[-1], "lr": optim.param_groups[0]["lr"]}
            if step % run.log_every == 0 or step == cfg.steps:
                loss_curve.append([step, sum(losses) / len(losses)])
                tb.add_scalar("train/loss", loss_curve[-1][1], step)
                tb.add_scalar("train/lr", scalars["lr"], step)
                tb.add_scalar("train/grad_norm", float(grad_norm), step)
                losses.clear()
            last = step == cfg.steps
            if evaluate is not None and ((run.eval_every and step % run.eval_every == 0) or last):
                results = evaluate(policy)
                rates = {t: r.stats.success_rate for t, r in results.items()}
                for t, r in results.items():
                    for k, v in r.stats.summary().items():
                        tb.add_scalar(f"eval/{t}/{k}", v, step)
                mean = sum(rates.values()) / len(rates)
                tb.add_scalar("eval/success_rate", mean, step)
                history.append({"step": step, "success": rates})
                scalars["eval_success"] = mean
                if mean > best:
                    best = mean
                    checkpoint("best")
            if (run.save_every and step % run.save_every == 0) or last:
                checkpoint("last")
            if progress is not None:
                progress(step, scalars)
    finally:
        tb.close()
    summary = {
        "steps": step,
        "best_success": best,
        "eval_history": history,
        "loss_curve": loss_curve,
        "train_seconds": time.perf_counter() - start,
        "checkpoint": str(ckpt_dir / "last"),
        "best_checkpoint": str(ckpt_dir / "best") if (ckpt_dir / "best").exists() else None,
    }
    (run.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _resume(
    policy: Policy,
    optim: torch.optim.Optimizer,
    path: Path,
    gen: torch.Generator,
    samples: int,
) -> dict[str, Any]:
    """Load weights, EMA, optimizer and RNG from checkpoint ``path`` into the fresh objects;
    returns the trainer's saved counters."""
    path = recover_checkpoint(path)
    meta, tensors = read_trainer(path)
    saved = load(path, expect={"policy_type": policy.name})
    mine, theirs = policy.config.to_dict(), saved.config.to_dict()
    changed = sorted(k for k in mine if mine[k] != theirs.get(k))
    if changed:
        raise CheckpointError(
            f"cannot resume from {path}: policy settings {changed} differ from the checkpoint's "
            f"(e.g. {changed[0]}={theirs.get(changed[0])!r} there, {mine[changed[0]]!r} now)"
        )
    if meta.get("samples", samples) != samples:
        raise CheckpointError(
            f"cannot resume from {path}: it trained on {meta['samples']} windows, the dataset "
            f"now has {samples}; resume with the same dataset"
        )
    policy.load_state_dict(saved.state_dict())
    load_optimizer(optim, tensors, meta["param_groups"], path)
    try:
        gen.set_state(torch.tensor(meta["rng"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        if meta.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(
                [torch.tensor(r, dtype=torch.uint8) for r in meta["cuda_rng"]]
            )
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / 'trainer.json'} has no valid RNG state: {e}") from None
    return meta


def dataset_roots(value: str | Sequence[str] | None) -> list[Path]:
    """``dataset=DIR`` or ``dataset=[DIR,DIR]`` as paths."""
    if value is None or value == "":
        raise ConfigError("train needs dataset=DIR (or dataset=[DIR1,DIR2] for several tasks)")
    items = [value] if isinstance(value, str) else list(value)
    return [Path(v) for v in items]
