"""``safety_node``: the only node that commands the hardware.

Each policy action (``action_raw``) is turned into the robot's command, run through the safety
chain (``configs/safety``) and published at once. The robot's side is an adapter chosen by the
profile's ``robot_type`` (:mod:`robot_rl.deploy.adapters`): an arm's joint command to two
ros2_control ForwardCommandControllers (``Float64MultiArray``) or one JointTrajectoryController;
an RC car's ``AckermannDriveStamped`` on ``/drive`` (ackermann_mux), its chain reading the scan,
odometry pose and speed (AEB, geofence), its safe action a brake; a humanoid's ``LowCmd_``
(Unitree-style, ``/lowcmd``) of joint targets with the gains of the current mode (profile gains in
ramp, hold and policy; kp = kd = 0 in idle; kp 0, kd 8 in damping and e-stop). Actions that
come faster than the control rate are commanded at once too, with the chain's rate bounds
shrunk to the time since the last command (``SafetyState.elapsed``), so commanded speeds hold
whatever the rate. A watchdog timer, four times the control rate, publishes the chain's safe
action (hold the last command) once the last action is older than the watchdog timeout (which
must leave the hold within two control periods), and keeps commanding while no actions come.

The deploy mode machine (idle → ramp to the default pose → hold → policy, damping on faults, latched
e-stop) decides what is commanded. A component that finds the robot fallen (``fall_detector``) puts
the machine in damping at once, latched like any fault: the policy does not take a fallen robot
back, an operator resets it (``~/reset``), which ramps again. ``/estop`` (``std_msgs/Bool`` true)
latches the e-stop; only ``~/reset`` (true) clears it, and only once ``/estop`` reads false again.
An exception anywhere in the node is a fault: damping, i.e. the last command held. With no valid
reading and no command yet, nothing is published (the controller keeps its own setpoint): no
command is ever made up. ``/diagnostics`` reports the mode and every intervention.

A managed (lifecycle) node: nothing is published before activation; activation starts the ramp,
deactivation holds the last command and returns to idle.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import load_profile
from robot_rl.deploy.adapters import safety_io
from robot_rl.deploy.node import NodeLogic, Out, Port, episode_event
from robot_rl.deploy.qos import COMMAND, LATCHED, STATE
from robot_rl.msgs import (
    Bool,
    DiagnosticArray,
    DiagnosticStatus,
    Float64MultiArray,
    Header,
    KeyValue,
    String,
)
from robot_rl.safety import SafetyConfig, SafetyState, build_chain
from robot_rl.safety.chain import build_fallback
from robot_rl.safety.modes import DAMPED, Mode, ModeMachine


class SafetyNode(NodeLogic):
    """Parameters: ``profile``, ``safety`` (a ``configs/safety`` name or path),
    ``action_mode`` (``ee_delta``: the arm tasks' end-effector action; ``joint``: the action is
    the joint command itself), ``ik_damping``, ``watchdog_timeout_s`` (0: the safety config's),
    ``ramp_s``, ``engage`` (hand over to the policy the first time the default pose is held
    after activation; else wait for ``~/engage``), topic names, ``reset_topic`` (a simulator's
    episode events; "" on hardware), ``command_interface``: ``forward`` (two
    ForwardCommandControllers, ``Float64MultiArray`` on the profile's command topics) or
    ``trajectory`` (one JointTrajectoryController: a one-point ``JointTrajectory`` per command
    on ``trajectory_topic``, reached one control period later, the gripper as its last joint).
    The car: ``task`` / ``task_overrides`` (the action's mapping onto [steering angle, speed]),
    ``steering_topic`` / ``steering_source`` / ``servo_gain`` / ``servo_offset`` (as the policy
    node), ``frame_id`` of ``/drive``. The humanoid: topics from its profile only."""

    default_name = "safety_node"
    lifecycle = True
    parameters: dict[str, Any] = {
        "profile": "arm",
        "safety": "arm",
        "action_mode": "ee_delta",
        "ik_damping": 0.05,
        "watchdog_timeout_s": 0.0,
        "ramp_s": 1.0,
        "engage": False,
        "action_topic": "/policy_node/action_raw",
        "joint_states_topic": "/joint_states",
        "estop_topic": "/estop",
        "diagnostics_hz": 2.0,
        "reset_topic": "",
        "command_interface": "forward",
        "trajectory_topic": "/arm_controller/joint_trajectory",
        # the car (robot_type ackermann_car)
        "task": "rccar_race",
        "task_overrides": "{}",
        "steering_topic": "/joint_states",
        "steering_source": "joint_states",
        "servo_gain": -1.2135,
        "servo_offset": 0.5304,
        "frame_id": "base_link",
    }

    def __init__(self, params=None, clock=None) -> None:
        super().__init__(params, clock)
        p = self.params
        self.profile = load_profile(p["profile"])
        cfg = SafetyConfig.load(p["safety"])
        if p["watchdog_timeout_s"] > 0:
            cfg = replace(cfg, watchdog_timeout_s=p["watchdog_timeout_s"])
        if "watchdog" not in cfg.chain:
            raise ConfigError(f"safety config {p['safety']!r} has no watchdog in its chain")
        self.cfg = cfg
        self.chain = build_chain(self.profile, cfg)
        self.damping = [f for f in self.chain.filters if getattr(f, "damps", False)]
        """Filters whose failing closed means damping, not a hold (``Filter.damps``)."""
        self.damping_names = frozenset(f.name for f in self.damping)
        space = self.chain.space
        self.period = space.dt
        self.timeout = cfg.watchdog_timeout_s
        if self.timeout + self.period / 4 > 2 * self.period + 1e-9:
            raise ConfigError(
                f"watchdog_timeout_s {self.timeout} s does not hold a silent policy within two "
                f"control periods ({2 * self.period:.3f} s at {self.profile.control_rate_hz} Hz"
                f"): at most {1.75 * self.period:.4f} s"
            )
        self.io = safety_io(self.profile, p, self.period)
        self.modes = ModeMachine(
            build_fallback(self.profile, cfg, space), space.default, p["ramp_s"]
        )
        self.joint_names = self.io.names
        self.publishers = {
            **self.io.publishers,
            "diagnostics": Port("/diagnostics", DiagnosticArray, STATE),
            "mode": Port("~/mode", String, LATCHED),
        }
        subs = {}
        if p["reset_topic"]:
            subs["reset_event"] = Port(p["reset_topic"], String, STATE)
        subs |= {
            # reliable + volatile matches every e-stop publisher, volatile or transient-local
            "estop": Port(p["estop_topic"], Bool, STATE),
            "reset": Port("~/reset", Bool, STATE),
            "engage": Port("~/engage", Bool, STATE),
            **self.io.subscriptions,
            "action": Port(p["action_topic"], Float64MultiArray, COMMAND),
        }
        self.subscriptions = subs
        for key in self.io.subscriptions:  # on_joints / on_odom, on_scan, on_steering
            setattr(self, f"on_{key}", lambda msg, k=key: self._on_reading(k, msg))
        self.timers = {"watch": self.period / 4, "diagnostics": 1.0 / p["diagnostics_hz"]}
        self.action: np.ndarray | None = None
        self.action_time: float | None = None
        self.last_step = -np.inf
        self.reset_pending = False
        self.estop_asserted = False
        self.auto_engage = False
        self.status = ("starting", DiagnosticStatus.WARN)
        self.reported_level = -1
        self.counts: dict[str, int] = {}
        self.held_since: float | None = None
        """When the current watchdog hold began (None: not holding)."""
        self.damp_reason = ""
        """Why a damping component failed closed on the last chain step ("" if none did)."""

    @property
    def q(self) -> np.ndarray | None:
        """The last reading of the commanded entries ``(1, J)`` (None: none yet)."""
        return self.io.reading()[0]

    @property
    def dq(self) -> np.ndarray | None:
        """Their velocities ``(1, J)``; None when the robot does not report them."""
        return self.io.reading()[1]

    # lifecycle ----------------------------------------------------------------------------
    def activate(self) -> Out:
        """Start the deploy sequence: ramp to the default pose, hold (then engage if asked)."""
        if self.modes.mode is not Mode.ESTOP:
            self.modes.stop()
            self.modes.reset()  # damping → idle: a fresh sequence from wherever it was
            self.modes.start()
        self.auto_engage = self.params["engage"]
        return self._mode_out()

    def deactivate(self) -> Out:
        """Hold the last command on the way out, forget the chain's memory, back to idle."""
        out = self._hold()
        if self.modes.mode is not Mode.ESTOP:
            self.modes.stop()
            self.modes.reset()
        self.chain.reset()
        self.action, self.action_time = None, None
        self.last_step = -np.inf
        return out + self._mode_out()

    def on_exception(self, key: str, error: Exception) -> Out:
        """Any exception inside the node: a fault (damping: the last command held)."""
        self.modes.fault(f"{key}: {type(error).__name__}: {error}")
        self._count(f"exception in {key}: {type(error).__name__}")
        self.status = (f"fault in {key}: {error}", DiagnosticStatus.ERROR)
        return self._hold() + self._mode_out()

    # inputs -------------------------------------------------------------------------------
    def on_reset_event(self, msg: String) -> Out:
        if episode_event(msg) == "start":
            self.reset_pending = True

    def on_estop(self, msg: Bool) -> Out:
        self.estop_asserted = bool(msg.data)
        if msg.data:
            self.modes.estop()
            return self._command(self.clock.now(), force=True) + self._mode_out()

    def on_reset(self, msg: Bool) -> Out:
        if not msg.data:
            return []
        if self.estop_asserted:
            self._count("reset refused: /estop still asserted")
            self.status = ("reset refused: release /estop first", DiagnosticStatus.ERROR)
            return [("diagnostics", self._diagnostics())]
        if self.modes.reset():
            for f in self.damping:  # the operator has picked the robot up
                f.reset()
            self.modes.start()
            self.auto_engage = False  # after a fault the operator engages by hand
            return self._mode_out()

    def on_engage(self, msg: Bool) -> Out:
        self.auto_engage = False
        changed = self.modes.engage() if msg.data else self.modes.disengage()
        return self._mode_out() if changed else []

    def _on_reading(self, key: str, msg) -> Out:
        try:
            fresh = self.io.update(key, msg, self.clock.now())
        except ValueError as e:
            # a malformed reading is no reading: the state goes stale and the chain holds
            self._count(str(e))
            return []
        q = self.io.reading()[0]
        if fresh and self.reset_pending and np.isfinite(q).all():
            # a simulator teleported the robot: its last command is where it now stands
            self.chain.reset_rows(np.array([0]), q)
            self.reset_pending = False
            self.last_step = -np.inf  # the next command is the first from this pose
            if self.action_time is not None:
                self.action_time = -np.inf  # the old episode's action is not to be replayed

    def on_action(self, msg: Float64MultiArray) -> Out:
        self.action = np.asarray(msg.data, float)
        self.action_time = self.clock.now()
        if self.modes.mode is Mode.POLICY:
            return self._command(self.action_time, force=True)

    # timers -------------------------------------------------------------------------------
    def tick_watch(self) -> Out:
        now = self.clock.now()
        stale = self.action_time is None or now - self.action_time > self.timeout
        policy = self.modes.mode is Mode.POLICY
        if policy and not stale:
            return []  # the actions drive the commands
        first_hold = policy and self.held_since is None
        if not first_hold and not self._due(now):
            return []
        out = self._command(now, force=first_hold)
        if self.modes.mode is Mode.HOLD and self.auto_engage:
            self.auto_engage = False  # once per activation: a disengage is respected
            self.modes.engage()
            out += self._mode_out()
        return out

    def tick_diagnostics(self) -> Out:
        return [("diagnostics", self._diagnostics())]

    # the command --------------------------------------------------------------------------
    def _due(self, now: float) -> bool:
        """A period (5% slack for jitter) has passed since the chain last stepped."""
        return now - self.last_step >= 0.95 * self.period

    def _state(self, now: float) -> SafetyState:
        q, dq, stamp, extra = self.io.reading()
        q = q if q is not None else np.full((1, len(self.joint_names)), np.nan)
        state = SafetyState(
            q=q, dq=dq, now=now, stamp=stamp, command_stamp=self.action_time, extra=extra
        )
        if np.isfinite(self.last_step):
            state.elapsed = now - self.last_step
        return self.chain.with_memory(state)

    def _proposal(self, state: SafetyState) -> np.ndarray:
        """The policy's action as a command ``(1, A)`` (NaN when there is none)."""
        if self.action is None:
            return np.full((1, len(self.joint_names)), np.nan)
        return self.io.proposal(self.action, state.q, self.chain.last_command)

    def _hold(self) -> Out:
        """Publish the damped mode's command (the last command, else the measured pose), or
        nothing when neither is known."""
        state = self._state(self.clock.now())
        if not self._known(state):
            return []
        return self._publish(state, self.modes.damp(state))

    @staticmethod
    def _known(state: SafetyState) -> bool:
        """A finite last command or measured pose exists to hold."""
        refs = [state.q, state.last_command]
        return any(r is not None and bool(np.isfinite(r).all()) for r in refs)

    def _command(self, now: float, force: bool = False) -> Out:
        state = self._state(now)
        if not self._known(state):
            self.status = (f"waiting for a valid {self.io.measurement}", DiagnosticStatus.WARN)
            return []
        if not force and not self._due(now):
            return []
        before = self.modes.mode
        self.damp_reason = ""

        def policy() -> np.ndarray:
            applied, reports = self.chain.step(state, self._proposal(state))
            self._note(reports, now)
            return applied

        if self.modes.mode in (Mode.RAMP, Mode.HOLD):
            # the ramp and the hold pose pass the chain too (limits, rate, keep-out regions)
            target, _ = self.modes.tick(state, lambda: None)
            if self.modes.mode in DAMPED:  # the ramp faulted (no finite reading to ramp from)
                applied = self.modes.damp(state)
            else:
                applied, reports = self.chain.step(replace(state, command_stamp=now), target)
                self._note(reports, now)
                if self.damp_reason:
                    self.modes.fault(self.damp_reason)
                    self.chain.hold_at(applied)
                    self.status = (self.damp_reason, DiagnosticStatus.ERROR)
        else:
            applied, report = self.modes.tick(state, policy)
            reason = report.reason
            if self.damp_reason and self.modes.mode is Mode.POLICY:
                self.modes.fault(self.damp_reason)
                reason = f"damping ({self.damp_reason})"
            if self.modes.mode in DAMPED:
                # the chain resumes from what the damped robot was commanded
                self.chain.hold_at(applied)
                self.status = (reason, DiagnosticStatus.ERROR)
        self.last_step = now
        out = self._publish(state, applied)
        if self.modes.mode is not before:
            out += self._mode_out()
        elif self.status[1] != self.reported_level:
            out.append(("diagnostics", self._diagnostics()))  # a change is reported at once
        return out

    def _note(self, reports, now: float) -> None:
        """Keep the status, the hold start and per-cause counts from the chain's reports."""
        failed = [r for r in reports if bool(r.fail_closed.any())]
        damp = [r for r in failed if r.component in self.damping_names]
        self.damp_reason = "; ".join(f"{r.component}: {r.reason}" for r in damp)
        changed = [r for r in reports if bool(r.intervened.any())]
        for r in changed:
            self._count(f"{r.component}: {r.reason}")
        watchdog = any(r.component == "watchdog" for r in failed)
        if watchdog and self.held_since is None:
            self.held_since = now
        elif not watchdog:
            self.held_since = None
        mode = self.modes.mode.value
        if failed:
            why = "; ".join(f"{r.component}: {r.reason}" for r in failed)
            self.status = (f"{mode}: safe action ({why})", DiagnosticStatus.ERROR)
        elif changed:
            self.status = (
                f"{self.modes.mode.value}: limited by {changed[-1].component}",
                DiagnosticStatus.OK,
            )
        else:
            self.status = (self.modes.mode.value, DiagnosticStatus.OK)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _publish(self, state: SafetyState, applied: np.ndarray) -> Out:
        return self.io.command(
            np.asarray(applied, float)[0], self.clock.stamp(), self.modes.mode.value
        )

    def _mode_out(self) -> Out:
        return [("mode", String(data=self.modes.mode.value)), ("diagnostics", self._diagnostics())]

    def _diagnostics(self) -> DiagnosticArray:
        message, level = self.status
        if self.modes.mode is Mode.ESTOP:
            message, level = (
                "e-stop latched (publish true on ~/reset to clear)",
                DiagnosticStatus.ERROR,
            )
        values = [
            KeyValue(key="mode", value=self.modes.mode.value),
            KeyValue(
                key="holding_since",
                value="" if self.held_since is None else f"{self.held_since:.3f}",
            ),
        ] + [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counts.items())]
        status = DiagnosticStatus(
            level=level,
            name=f"robot_rl: {self.default_name}",
            message=message,
            hardware_id=self.profile.name,
            values=values,
        )
        self.reported_level = level
        return DiagnosticArray(header=Header(stamp=self.clock.stamp()), status=[status])
