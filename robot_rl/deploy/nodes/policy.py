"""``policy_node``: observations in, the policy's raw action out (``~/action_raw``), never the
hardware command (the safety node owns that).

Every new observation (a ``/joint_states`` with a newer stamp) pops the next action of the
current chunk. When ``Ta`` actions of a chunk have been executed a worker thread samples the next
chunk from the current observation window. The node waits for it at most ``inference_budget_s``
(inside that budget it behaves exactly like the batched simulator's receding-horizon runner);
past it the tick goes on with the old chunk's next action, so inference never blocks the
control tick for longer than the budget. A late chunk is used from the action that belongs to
the current tick (the ones whose ticks passed are dropped).
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
from robot_rl.deploy.arm import ArmObservation, JointCache
from robot_rl.deploy.node import NodeLogic, Out, Port, episode_event
from robot_rl.deploy.qos import COMMAND, STATE
from robot_rl.msgs import Float64MultiArray, JointState, PoseStamped, String, to_seconds
from robot_rl.policies import load
from robot_rl.policies.observations import ObservationHistory

STATE_KEY = "observation.state"


class PolicyNode(NodeLogic):
    """Parameters: ``checkpoint`` (a policy checkpoint directory), ``profile`` (robot profile),
    ``instruction`` (language-conditioned policies; default: the first trained one),
    ``action_steps`` / ``denoise_steps`` (0: the checkpoint's), ``inference_budget_s``,
    ``seed``, ``threads`` (torch intra-op threads, 0: leave), ``compile`` (torch.compile the
    per-step head), topic names, and ``reset_topic`` (a simulator's episode events;
    "" on hardware)."""

    default_name = "policy_node"
    parameters: dict[str, Any] = {
        "checkpoint": "",
        "profile": "arm",
        "instruction": "",
        "action_steps": 0,
        "denoise_steps": 0,
        "inference_budget_s": 0.03,
        "seed": 0,
        "threads": 0,
        "compile": False,
        "joint_states_topic": "/joint_states",
        "cube_pose_topic": "/cube_pose",
        "goal_pose_topic": "/goal_pose",
        "reset_topic": "",
    }

    def __init__(self, params=None, clock=None, policy=None) -> None:
        super().__init__(params, clock)
        p = self.params
        if policy is None:
            if not p["checkpoint"]:
                raise ConfigError("policy_node needs the parameter checkpoint:=DIR")
            policy = load(p["checkpoint"])
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
        self.observe = ArmObservation(profile, cfg.state_names)
        self.joints = JointCache(self.observe.joint_names)
        # one action per control period: a driver that publishes /joint_states faster (100 Hz
        # and more is common) must not make the policy step faster than it was trained
        self.period = 1.0 / profile.control_rate_hz
        if len(self.observe.index) != cfg.state_dim:
            raise ConfigError(
                f"the policy reads {cfg.state_dim} state entries, the arm observation has "
                f"{len(self.observe.index)}"
            )
        self.instruction = p["instruction"] or (cfg.instructions[0] if cfg.instructions else "")
        self.action_steps = p["action_steps"] or cfg.action_steps
        if not 1 <= self.action_steps <= cfg.horizon:
            raise ConfigError(
                f"action_steps must be in [1, {cfg.horizon}], got {self.action_steps}"
            )
        self.steps = p["denoise_steps"] or None
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
        subs["cube"] = Port(p["cube_pose_topic"], PoseStamped, STATE)
        subs["goal"] = Port(p["goal_pose_topic"], PoseStamped, STATE)
        subs["joints"] = Port(p["joint_states_topic"], JointState, STATE)
        self.subscriptions = subs
        self.cube = self.goal = None
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
            self.cube = self.goal = None  # the last episode's objects are gone
        return []

    def on_cube(self, msg: PoseStamped) -> Out:
        self.cube = msg.pose

    def on_goal(self, msg: PoseStamped) -> Out:
        self.goal = msg.pose

    def on_joints(self, msg: JointState) -> Out:
        stamp = to_seconds(msg.header.stamp)
        if stamp == 0.0:  # a driver that does not stamp its readings: the receipt time
            stamp = self.clock.now()
        try:
            self.joints.update(msg)
        except ValueError as e:
            self.log(f"ignored a joint_states message: {e}")
            return []
        # the same observation again (a simulator between episodes), or sooner than one
        # control period after the last one acted on (5% slack for jitter)
        if not stamp >= self.last_stamp + 0.95 * self.period:
            return []
        try:
            state = self.observe(*self.joints.arrays(), self.cube, self.goal)
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
        return [("action", Float64MultiArray(data=[float(x) for x in action]))]

    # ----------------------------------------------------------------------------------
    def _sample(self, window: dict[str, torch.Tensor]) -> np.ndarray:
        obs: dict[str, Any] = {"state": window[STATE_KEY]}
        if self.policy.config.uses_text:
            obs["instruction"] = [self.instruction]
        with torch.inference_mode():
            chunk = self.policy.act(obs, generator=self.generator, steps=self.steps)
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
