"""``policy_node``: observations in, the policy's raw action out (``~/action_raw``), never the
hardware command (the safety node owns that).

What it subscribes to and how the state vector is built depends on the robot
(:mod:`robot_rl.deploy.adapters`, chosen by the profile's ``robot_type``): the arm reads
``/joint_states`` and the object poses, the RC car ``/odom``, ``/scan`` and its steering angle,
the humanoid Unitree-style ``/lowstate`` (and ``/cmd_vel``).

Every new observation (a ``/joint_states`` or ``/odom`` with a newer stamp) pops the next action
of the current chunk. When ``Ta`` actions of a chunk have been executed a worker thread samples
the next chunk from the current observation window. The node waits for it at most
``inference_budget_s`` (inside that budget it behaves exactly like the batched simulator's
receding-horizon runner); past it the tick goes on with the old chunk's next action, so
inference never blocks the control tick for longer than the budget. A late chunk is used from
the action that belongs to the current tick (the ones whose ticks passed are dropped).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as InferenceTimeout
from typing import Any

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import load_profile
from robot_rl.deploy.adapters import policy_inputs
from robot_rl.deploy.node import NodeLogic, Out, Port, episode_event
from robot_rl.deploy.qos import COMMAND, STATE
from robot_rl.msgs import Float64MultiArray, String
from robot_rl.policies import load
from robot_rl.policies.observations import ObservationHistory
from robot_rl.policies.policy import check_noise_scale

STATE_KEY = "observation.state"


class PolicyNode(NodeLogic):
    """Parameters: ``checkpoint`` (a policy checkpoint directory: a behaviour-cloned chunk
    policy, or a ``robot-rl train ppo`` checkpoint, which acts once per observation),
    ``profile`` (robot profile),
    ``instruction`` (language-conditioned policies; default: the first trained one),
    ``action_steps`` / ``denoise_steps`` (0: the checkpoint's), ``noise_scale`` (multiplies
    the sampling noise; 0: a flow policy's deterministic chunk), ``inference_budget_s``,
    ``seed``, ``threads`` (torch intra-op threads, 0: leave), ``compile`` (torch.compile the
    per-step head), topic names, and ``reset_topic`` (a simulator's episode events;
    "" on hardware). The car also reads ``track`` (``sim/tracks`` name or a CSV path: the
    centreline map), ``task_overrides`` (JSON of the task config fields the policy was trained
    with, if not its defaults), ``steering_topic`` / ``steering_source`` (``joint_states`` or
    ``servo``, with ``servo_gain`` / ``servo_offset``)."""

    default_name = "policy_node"
    parameters: dict[str, Any] = {
        "checkpoint": "",
        "profile": "arm",
        "instruction": "",
        "action_steps": 0,
        "denoise_steps": 0,
        "noise_scale": 1.0,
        "inference_budget_s": 0.03,
        "seed": 0,
        "threads": 0,
        "compile": False,
        "joint_states_topic": "/joint_states",
        "cube_pose_topic": "/cube_pose",
        "goal_pose_topic": "/goal_pose",
        "reset_topic": "",
        # the car (robot_type ackermann_car)
        "track": "",
        "task_overrides": "{}",
        "steering_topic": "/joint_states",
        "steering_source": "joint_states",
        "servo_gain": -1.2135,
        "servo_offset": 0.5304,
    }

    def __init__(self, params=None, clock=None, policy=None) -> None:
        super().__init__(params, clock)
        p = self.params
        if policy is None:
            if not p["checkpoint"]:
                raise ConfigError("policy_node needs the parameter checkpoint:=DIR")
            policy = load(p["checkpoint"])  # a BC policy or a PPO checkpoint's actor
        if p["threads"] > 0:
            torch.set_num_threads(p["threads"])
        self.policy = policy
        cfg = policy.config
        if cfg.cameras:
            raise ConfigError(
                f"policy_node reads state observations; this policy also reads cameras "
                f"{list(cfg.cameras)}, which the node does not subscribe to yet"
            )
        profile = load_profile(p["profile"])
        self.inputs = policy_inputs(profile, p, cfg)
        # one action per control period: a driver that publishes its observations faster (100 Hz
        # and more is common) must not make the policy step faster than it was trained
        self.period = 1.0 / profile.control_rate_hz
        if self.inputs.dim != cfg.state_dim:
            raise ConfigError(
                f"the policy reads {cfg.state_dim} state entries, the {profile.robot_type} "
                f"observation has {self.inputs.dim}"
            )
        self.instruction = p["instruction"] or (cfg.instructions[0] if cfg.instructions else "")
        self.action_steps = p["action_steps"] or cfg.action_steps
        if not 1 <= self.action_steps <= cfg.horizon:
            raise ConfigError(
                f"action_steps must be in [1, {cfg.horizon}], got {self.action_steps}"
            )
        self.steps = p["denoise_steps"] or None
        self.noise_scale = check_noise_scale(p["noise_scale"])
        if p["compile"]:
            policy.compile_for_inference(batch_size=1)
        self.generator = torch.Generator().manual_seed(p["seed"])
        self.history = ObservationHistory(cfg.obs_horizon)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._lock = threading.Lock()
        self.publishers = {"action": Port("~/action_raw", Float64MultiArray, COMMAND)}
        subs = {}
        if p["reset_topic"]:  # first: a reset is handled before the observation it precedes
            subs["reset"] = Port(p["reset_topic"], String, STATE)
        subs |= self.inputs.ports
        self.subscriptions = subs
        for key in self.inputs.ports:  # on_joints, on_cube, ... / on_odom, on_scan, ...
            setattr(self, f"on_{key}", lambda msg, k=key: self._on_input(k, msg))
        self.clear()
        self.stats = {"observations": 0, "replans": 0, "late_chunks": 0, "held": 0}

    def clear(self) -> None:
        """Forget the episode: observation window, action queue, pending inference (a sample
        already running finishes in the worker; its chunk is dropped)."""
        self.history.clear()
        self.chunk: np.ndarray | None = None
        self.index = 0  # index in self.chunk of the action for the current tick
        self.tick_count = 0
        self.pending: Future | None = None
        self.pending_tick = 0
        self.last_stamp = -np.inf

    # ----------------------------------------------------------------------------------
    def on_reset(self, msg: String) -> Out:
        if episode_event(msg) == "start":
            self.clear()
            self.inputs.clear()
        return []

    def _on_input(self, key: str, msg: Any) -> Out:
        inputs = self.inputs
        if key != inputs.trigger:
            try:
                inputs.update(key, msg)
            except ValueError as e:
                self.log(f"ignored a {inputs.ports[key].topic} message: {e}")
            return []
        stamp = inputs.stamp(msg)
        if stamp == 0.0:  # a driver that does not stamp its readings: the receipt time
            stamp = self.clock.now()
        try:
            inputs.update(key, msg)
        except ValueError as e:
            self.log(f"ignored a {inputs.ports[key].topic} message: {e}")
            return []
        # the same observation again (a simulator between episodes), or sooner than one
        # control period after the last one acted on (5% slack for jitter)
        if not stamp >= self.last_stamp + 0.95 * self.period:
            return []
        try:
            state = inputs.state()
        except ValueError as e:
            self.log(f"no action: {e}")
            return []
        if not np.isfinite(state).all():
            # publish nothing: the safety node's watchdog holds the robot
            self.log("non-finite observation, no action")
            return []
        self.last_stamp = stamp
        self.stats["observations"] += 1
        window = self.history.push({STATE_KEY: torch.from_numpy(state).float()[None]})
        action = self._next_action(window)
        self.tick_count += 1
        if action is None:
            self.stats["held"] += 1
            return []
        inputs.acted(action)
        return [("action", Float64MultiArray(data=[float(x) for x in action]))]

    # ----------------------------------------------------------------------------------
    def _sample(self, window: dict[str, torch.Tensor]) -> np.ndarray:
        obs: dict[str, Any] = {"state": window[STATE_KEY]}
        if self.policy.config.uses_text:
            obs["instruction"] = [self.instruction]
        with torch.inference_mode():
            chunk = self.policy.act(
                obs, generator=self.generator, steps=self.steps, noise_scale=self.noise_scale
            )
        return chunk[0].float().numpy().astype(np.float64)

    def _next_action(self, window: dict[str, torch.Tensor]) -> np.ndarray | None:
        need = self.chunk is None or self.index >= self.action_steps
        if need and self.pending is None:
            self.pending = self._pool.submit(self._sample, window)
            self.pending_tick = self.tick_count
            self.stats["replans"] += 1
        if self.pending is not None:
            # only the tick that asked for the chunk waits for it; later ones just look
            waits = need and self.tick_count == self.pending_tick
            budget = self.params["inference_budget_s"] if waits else 0.0
            try:
                chunk = self.pending.result(timeout=budget)
            except InferenceTimeout:
                chunk = None
                if waits:
                    self.stats["late_chunks"] += 1
            except Exception as e:  # noqa: BLE001 — a failed inference skips one chunk
                self.log(f"inference failed, chunk dropped: {type(e).__name__}: {e}")
                chunk, self.pending = None, None
                self.stats["failed_chunks"] = self.stats.get("failed_chunks", 0) + 1
            if chunk is not None:
                self.chunk, self.pending = chunk, None
                self.index = self.tick_count - self.pending_tick
        if self.chunk is None or self.index >= len(self.chunk):
            return None
        action = self.chunk[self.index]
        self.index += 1
        return action

    def shutdown(self) -> None:
        self.log(" ".join(f"{k}={v}" for k, v in self.stats.items()))
        self._pool.shutdown(wait=False, cancel_futures=True)
