"""Stable-Baselines3 SAC's training state as safetensors + JSON, so that the from-scratch SAC
baseline of ``bench/residual_vs_baselines.py`` can stop and continue like our own learners
(SB3's ``save``/``save_replay_buffer`` pickle; these files load without it).

Kept: the policy (actor, critics, target critics), the three optimizers' moments, the entropy
temperature, the filled part of the replay buffer and the step counters. Not kept: the episode in
progress (a continued run starts new episodes; SAC's 1-step targets need nothing across the cut)
and SB3's global random streams.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from robot_rl.algos.train_state import (
    load_optimizer,
    optimizer_tensors,
    read_files,
    recover_checkpoint,
    refuse_changed_settings,
    strip_prefix,
    to_cpu,
    write_checkpoint,
)
from robot_rl.core.errors import ConfigError

STATE_FILE, META_FILE = "sac.safetensors", "sac.json"
_REPLAY = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _optimizers(model: Any) -> dict[str, torch.optim.Optimizer]:
    optims = {"actor": model.actor.optimizer, "critic": model.critic.optimizer}
    if model.ent_coef_optimizer is not None:  # a learned temperature (ent_coef="auto")
        optims["ent_coef"] = model.ent_coef_optimizer
    return optims


def save_sac(directory: Path, model: Any, meta: dict[str, Any]) -> None:
    """Write ``model`` (an SB3 ``SAC``) and ``meta`` (the caller's JSON: curve, wall time) to
    ``directory``, atomically (:func:`write_checkpoint`)."""
    rb = model.replay_buffer
    filled = rb.buffer_size if rb.full else rb.pos

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        tensors = {f"policy.{k}": v for k, v in model.policy.state_dict().items()}
        groups = {}
        for name, optim in _optimizers(model).items():
            moments, groups[name] = optimizer_tensors(optim)
            tensors |= {f"{name}_optim.{k}": v for k, v in moments.items()}
        if model.log_ent_coef is not None:
            tensors["log_ent_coef"] = model.log_ent_coef.detach().reshape(1)
        for key in _REPLAY:
            tensors[f"replay.{key}"] = torch.from_numpy(
                np.ascontiguousarray(getattr(rb, key)[:filled])
            )
        save_file(to_cpu(tensors), str(tmp / STATE_FILE), metadata={"format": "pt"})
        state = {
            "num_timesteps": model.num_timesteps,
            "n_updates": model._n_updates,
            "replay_pos": rb.pos,
            "replay_full": rb.full,
            "param_groups": groups,
        }
        (tmp / META_FILE).write_text(json.dumps({"meta": meta, "sac": state}, indent=2) + "\n")

    write_checkpoint(directory, write)


def load_sac(
    directory: Path, model: Any, settings: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Put the state :func:`save_sac` wrote into ``model`` (built with the same settings and
    spaces); returns the caller's ``meta``, or None when ``directory`` holds no state. A damaged
    or mismatched state is a one-line :class:`ConfigError` (a half-loaded ``model`` is then
    not to be used), and so is a ``meta`` whose entries differ from ``settings`` (checked before
    anything is loaded; entries the saved ``meta`` lacks are not compared)."""
    directory = recover_checkpoint(Path(directory))
    if not (directory / META_FILE).exists():
        return None
    where = f"SAC state {directory}"
    saved, tensors = read_files(
        directory, (META_FILE, STATE_FILE), f"{where}: {{}} is missing", f"{where} is unreadable"
    )
    meta = saved.get("meta", {})
    refuse_changed_settings(
        where, {k: meta[k] for k, v in (settings or {}).items() if k in meta and meta[k] != v}
    )
    try:
        state = saved["sac"]
        model.policy.load_state_dict(strip_prefix(tensors, "policy."))
        for name, optim in _optimizers(model).items():
            moments = strip_prefix(tensors, f"{name}_optim.")
            load_optimizer(optim, moments, state["param_groups"][name], where)
        if model.log_ent_coef is not None:
            with torch.no_grad():
                model.log_ent_coef.copy_(tensors["log_ent_coef"].reshape(model.log_ent_coef.shape))
        rb = model.replay_buffer
        for key in _REPLAY:
            values = tensors[f"replay.{key}"].numpy()
            getattr(rb, key)[: len(values)] = values
        rb.pos, rb.full = int(state["replay_pos"]), bool(state["replay_full"])
        model.num_timesteps, model._n_updates = int(state["num_timesteps"]), int(state["n_updates"])
    except (KeyError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else repr(e)
        raise ConfigError(f"{where} does not fit this SAC model: {msg}") from None
    return saved["meta"]
