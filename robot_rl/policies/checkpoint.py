"""Policy checkpoints: a directory of JSON and safetensors, never pickle.

Layout::

    config.json               {"format", "version", "policy_type", "config": {...resolved config}}
    model.safetensors         evaluation weights (the EMA network) + normalizer buffers
    train_state.safetensors   raw (non-EMA) weights and the EMA step, to resume training

Loading reads tensors with ``safetensors`` only; a file that is really a ``torch.save`` zip or a
pickle is refused by its magic bytes before any parser sees it. :func:`load` also reads the
deployable actor of a PPO checkpoint (``robot-rl train ppo``: ``config.json`` +
``ppo.safetensors``, see :mod:`robot_rl.policies.ppo_actor`), so evaluation and deployment take
either kind of directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robot_rl.core.errors import ConfigError, RobotRLError
from robot_rl.policies.policy import POLICIES, Policy
from robot_rl.policies.ppo_actor import PPOActor, is_ppo_checkpoint, load_ppo_actor

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TRAIN_FILE = "train_state.safetensors"
FORMAT, VERSION = "robot_rl.policy", 1


class CheckpointError(RobotRLError):
    """A checkpoint directory is missing, corrupt, unsafe or for another setup."""


def save(policy: Policy, directory: str | os.PathLike) -> Path:
    """Write ``policy`` to ``directory`` (created if needed); returns the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "policy_type": policy.name,
        "config": policy.config.to_dict(),
    }
    _write_atomic(out / CONFIG_FILE, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    model = _prefixed("net.", policy.eval_net.state_dict()) | _prefixed(
        "normalizer.", policy.normalizer.state_dict()
    )
    train = _prefixed("net.", policy.net.state_dict()) | {"ema_step": policy.ema_step}
    for name, tensors in ((MODEL_FILE, model), (TRAIN_FILE, train)):
        cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        _write_atomic(out / name, lambda p, t=cpu: save_file(t, str(p), metadata={"format": "pt"}))
    return out


def load(
    directory: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    expect: Mapping[str, Any] | None = None,
) -> Policy | PPOActor:
    """The policy saved in ``directory``, on ``device``, with EMA weights for evaluation; for a
    PPO checkpoint its deterministic actor (``policy_type`` ``"ppo"``).

    ``expect`` lists config fields the caller relies on (e.g. ``{"state_dim": 40, "task":
    "arm_push"}``, or ``"policy_type"``); any mismatch raises :class:`CheckpointError`.
    """
    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint directory {root} does not exist")
    if is_ppo_checkpoint(root):
        try:
            actor = load_ppo_actor(root)
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        _check_expected(root, actor.name, actor.config, expect or {})
        return actor.to(device)
    meta = _read_config(root / CONFIG_FILE)
    policy_type = meta["policy_type"]
    try:
        cls = POLICIES.get(policy_type)
        config = cls.config_class.from_dict(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{root / CONFIG_FILE}: {e}") from None
    _check_expected(root, policy_type, config, expect or {})
    policy = cls(config)
    model = _read_tensors(root / MODEL_FILE)
    net = {k[4:]: v for k, v in model.items() if k.startswith("net.")}
    norm = {k[11:]: v for k, v in model.items() if k.startswith("normalizer.")}
    if len(net) + len(norm) != len(model):
        extra = sorted(k for k in model if not k.startswith(("net.", "normalizer.")))
        raise CheckpointError(f"{root / MODEL_FILE} has unexpected tensors {extra[:5]}")
    _load_into(policy.normalizer, norm, root / MODEL_FILE)
    _load_into(policy.ema_net, net, root / MODEL_FILE)
    train_path = root / TRAIN_FILE
    if train_path.exists():
        train = _read_tensors(train_path)
        if "ema_step" not in train:
            raise CheckpointError(f"{train_path} has no 'ema_step' tensor")
        _load_into(
            policy.net, {k[4:]: v for k, v in train.items() if k.startswith("net.")}, train_path
        )
        policy.ema_step.copy_(train["ema_step"])
    else:
        _load_into(policy.net, net, root / MODEL_FILE)
    return policy.to(device).eval()


def _prefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f'{path} is not a robot_rl policy config (no "format": "{FORMAT}")')
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format version {meta.get('version')!r}; this robot_rl reads {VERSION}"
        )
    for key in ("policy_type", "config"):
        if key not in meta:
            raise CheckpointError(f"{path} has no {key!r}")
    return meta


def _check_expected(root: Path, policy_type: str, config: Any, expect: Mapping[str, Any]) -> None:
    fields = set(config.to_dict()) | {"policy_type"}
    unknown = sorted(set(expect) - fields)
    if unknown:
        raise ConfigError(
            f"load(expect=...) has unknown fields {unknown}; known are {sorted(fields)}"
        )
    wrong = []
    for key, want in expect.items():
        have = policy_type if key == "policy_type" else getattr(config, key)
        if isinstance(want, list):
            want = tuple(want)
        if have != want:
            wrong.append(f"{key}={have!r} (expected {want!r})")
    if wrong:
        raise CheckpointError(f"checkpoint {root} does not fit: it has {', '.join(wrong)}")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path} is a pickle / torch.save file, not safetensors; refusing to unpickle it"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a valid safetensors file ({reason})") from None


def _load_into(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict`` with one-line errors naming the file and the first offending tensor."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its config: missing tensors {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(value.shape)}, "
                f"config implies {tuple(expected[key].shape)}"
            )
    module.load_state_dict(tensors)
