"""``recorder_node``: records a running robot or simulation from its ROS topics into a LeRobot v3
dataset (and, with ``bag:=true``, every received message into one MCAP rosbag2 per episode).

Streams: the state (``/joint_states`` merged by joint name, the profile's joints and fingers,
positions then velocities; or a ``Float64MultiArray`` on ``state_topic``), the action (the
commands actually sent, ``Float64MultiArray`` topics concatenated in order: by default the
profile's arm and gripper command topics) and any cameras (``sensor_msgs/Image``).

Alignment rule: one frame per state reading (readings stamped closer than ``0.95 / fps`` to
the last one kept are skipped, for drivers faster than the control rate; a ``JointState``'s
header stamp counts, else the receipt time). A reading's frame pairs it
with the first complete set of commands received after it, i.e. the commands that answered it,
and the cameras as they were then; a reading that nothing answered before the next one gets the
latest commands. The frame is written when the next reading (or the episode's end) arrives.
So over any transport an episode of ``L`` control steps gives ``L`` frames, each state with its
own command (a timer sampling "the latest of everything" would pair a state with the previous
state's command whenever it fired between the two).

Episodes come from ``episode_topic`` (``std_msgs/String`` JSON as the sim bridge publishes:
``{"event": "start" | "end" | "discard", "success": bool}``) or from an operator: ``~/start``
(``Bool`` true), ``~/stop`` (``Bool``, its data is the episode's success; saved either way),
``~/discard`` (``Bool`` true). Each episode is committed on its ``end`` (``DatasetWriter``), so
a kill loses only the episode in progress; a bag of an unsaved episode is deleted.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import load_profile
from robot_rl.data.features import Feature
from robot_rl.data.rosbag import BagWriter, camera_name, image_array
from robot_rl.data.writer import DatasetWriter
from robot_rl.deploy.arm import FINGERS, JointCache, command_topics
from robot_rl.deploy.node import NodeLogic, Out, Port
from robot_rl.deploy.qos import SENSOR, STATE
from robot_rl.msgs import Bool, Float64MultiArray, Image, JointState, String, to_seconds

NS = 1_000_000_000


def _topics(text: str) -> list[str]:
    """A comma-separated topic list (a string parameter: ROS 2 cannot type an empty list)."""
    return [t.strip() for t in text.split(",") if t.strip()]


class RecorderNode(NodeLogic):
    """Parameters: ``out`` (dataset directory), ``resume`` (append to the dataset at ``out``),
    ``profile`` (robot profile), ``fps`` (0: the profile's control rate), ``joint_states_topic``,
    ``state_topic`` (a ``Float64MultiArray`` state instead of joint states), ``action_topics``
    and ``image_topics`` (comma-separated; "" actions: the profile's command topics),
    ``episode_topic``, ``task`` (the episodes' instruction; "": the last text on
    ``instruction_topic``), ``bag`` (also write ``<out>/bags/episode_<k>`` MCAP bags)."""

    default_name = "recorder"
    parameters: dict[str, Any] = {
        "out": "",
        "resume": False,
        "profile": "arm",
        "fps": 0,
        "joint_states_topic": "/joint_states",
        "state_topic": "",
        "action_topics": "",
        "image_topics": "",
        "episode_topic": "/sim/episode",
        "task": "",
        "instruction_topic": "/instruction",
        "bag": False,
    }

    def __init__(self, params=None, clock=None) -> None:
        super().__init__(params, clock)
        p = self.params
        if not p["out"]:
            raise ConfigError("recorder_node needs the parameter out:=DIR")
        if not (p["task"] or p["instruction_topic"]):
            raise ConfigError("recorder_node needs task:=TEXT or an instruction_topic")
        profile = load_profile(p["profile"])
        self.robot_type = profile.robot_type
        self.fps = p["fps"] or round(profile.control_rate_hz)
        if self.fps < 1 or (not p["fps"] and self.fps != profile.control_rate_hz):
            got = p["fps"] or profile.control_rate_hz
            raise ConfigError(f"recorder_node: fps must be a whole number >= 1, got {got}")
        subs: dict[str, Port] = {}
        if p["episode_topic"]:
            subs["episode"] = Port(p["episode_topic"], String, STATE)
        subs |= {k: Port(f"~/{k}", Bool, STATE) for k in ("start", "stop", "discard")}
        if p["instruction_topic"]:
            subs["instruction"] = Port(p["instruction_topic"], String, STATE)
        self.joints: JointCache | None = None
        if p["state_topic"]:
            subs["state"] = Port(p["state_topic"], Float64MultiArray, STATE)
            self.state_names = None
        else:
            subs["state"] = Port(p["joint_states_topic"], JointState, STATE)
            names = [*profile.joint_names, *FINGERS]
            self.joints = JointCache(names)
            self.state_names = [f"{n}.pos" for n in names] + [f"{n}.vel" for n in names]
        actions = _topics(p["action_topics"])
        self.action_names = None
        if not actions:
            actions = list(command_topics(profile))
            self.action_names = [*profile.joint_names, profile.gripper.name]
        self.action_keys = [f"action_{i}" for i in range(len(actions))]
        subs |= {k: Port(t, Float64MultiArray, STATE) for k, t in zip(self.action_keys, actions)}
        images = _topics(p["image_topics"])
        self.cameras = {f"image_{i}": camera_name(t) for i, t in enumerate(images)}
        if len(set(self.cameras.values())) != len(images):
            raise ConfigError(f"recorder_node: image_topics {images} repeat a camera name")
        subs |= {k: Port(t, Image, SENSOR) for k, t in zip(self.cameras, images)}
        self.subscriptions = subs
        self.streams = {"state", *self.action_keys, *self.cameras}
        for key in self.streams:
            setattr(self, f"on_{key}", partial(self._receive, key))

        self.out = Path(p["out"])
        self.writer: DatasetWriter | None = None
        if (self.out / "meta/info.json").exists() and p["resume"]:
            self.writer = DatasetWriter.open(self.out)  # locked from now on
            if self.writer.fps != self.fps:
                fps = self.writer.fps
                self.writer.close()
                raise ConfigError(
                    f"recorder_node: {self.out} was recorded at {fps} fps, not {self.fps}; "
                    "resume at its rate (fps:={fps}) or record to another out"
                )
        elif self.out.exists() and any(self.out.iterdir()):
            hint = "holds no dataset" if p["resume"] else "is not empty; pass resume:=true"
            raise ConfigError(f"recorder_node: out {self.out} {hint}")

        self.latest: dict[str, Any] = {}
        self.fresh: set[str] = set()  # streams with a message since the episode's start
        self.active = False
        self.frames = 0
        self.instruction = ""
        self.bag: BagWriter | None = None
        self.bag_path: Path | None = None
        self.preroll: list[tuple[str, Any, int]] = []  # bagged before the bag could open
        self.saved = 0
        self._warned_velocity = False
        self.failed = ""  # why the writer failed; nothing more is recorded after that
        self.pending: dict[str, np.ndarray] | None = None  # the reading waiting for its answer
        self.answer: dict[str, np.ndarray] | None = None  # the commands (+ cameras) answering it
        self.since: set[str] = set()  # command streams received since that reading
        self.last_reading = -np.inf

    # -- messages ------------------------------------------------------------------------
    def _receive(self, key: str, msg: Any) -> Out:
        """A message of a recorded stream: keep it as the stream's latest (and bag it)."""
        if self.joints is not None and key == "state":
            self.joints.update(msg)  # ValueError: logged by on_exception, nothing changed
        self.latest[key] = msg
        self.fresh.add(key)
        self._to_bag(key, msg)
        if key == "state":
            self._write_pending()  # the previous reading, with what answered it
            header = getattr(msg, "header", None)
            stamp = to_seconds(header.stamp) if header is not None else 0.0
            # the driver's stamp when it gives one: receipt times jitter with the transport
            self._hold_reading(stamp or self.clock.now())
        elif self.pending is not None and key in self.action_keys:
            self.since.add(key)
            if self.answer is None and self.since >= set(self.action_keys) and self._complete():
                self.answer = self._frame(parts=("action", "images"))
        return []

    def on_instruction(self, msg: String) -> Out:
        self.instruction = msg.data
        self._to_bag("instruction", msg)

    def on_episode(self, msg: String) -> Out:
        try:
            event = json.loads(msg.data)
            kind, success = event.get("event"), bool(event.get("success", False))
        except (ValueError, AttributeError):
            self.log(f"ignored a malformed episode message {msg.data[:80]!r}")
            return []
        if kind == "start":
            self._start()
        self._to_bag("episode", msg)  # a start goes into the new episode's bag
        if kind == "end":
            self._end(success)
        elif kind == "discard":
            self._drop("discarded by the episode topic")

    def on_start(self, msg: Bool) -> Out:
        if msg.data:
            self._start()

    def on_stop(self, msg: Bool) -> Out:
        self._end(bool(msg.data))

    def on_discard(self, msg: Bool) -> Out:
        if msg.data:
            self._drop("discarded by the operator")

    # -- episodes ------------------------------------------------------------------------
    def _start(self) -> None:
        if self.failed:
            self.log(f"not recording: the dataset writer failed earlier ({self.failed})")
            return
        if self.active:
            self._drop("a new episode started before it ended")
        self.active, self.frames, self.fresh, self.preroll = True, 0, set(), []
        self.pending, self.answer, self.last_reading = None, None, -np.inf

    def _end(self, success: bool) -> None:
        if not self.active:
            self.log("ignored an episode end without a start")
            return
        self._write_pending()
        task = self.params["task"] or self.instruction
        if not self.frames:
            self._drop("no tick had a message of every stream")
        elif not task:
            self._drop("no task: set task:=TEXT or publish the instruction")
        else:
            self.active = False
            try:
                index = self.writer.save_episode(task, {"success": success})
            except Exception as e:  # noqa: BLE001 — e.g. a full disk: stop, keep what is saved
                self.failed = f"{type(e).__name__}: {e}"
                self.log(f"could not save the episode ({self.failed}); recording stopped")
                self._close_bag(keep=False)
                return
            self._close_bag(keep=True)
            self.saved += 1
            self.log(f"saved episode {index} ({self.frames} frames, success={success})")

    def _drop(self, why: str) -> None:
        """Forget the episode in progress (its frames and its bag)."""
        if self.active:
            self.log(f"dropped an episode of {self.frames} frames: {why}")
        self.active, self.frames, self.preroll = False, 0, []
        if self.writer is not None:
            self.writer.discard_episode()
        self._close_bag(keep=False)

    # -- frames --------------------------------------------------------------------------
    def _complete(self) -> bool:
        """Every command and camera stream has had a message since the episode started."""
        return self.streams - {"state"} <= self.fresh

    def _hold_reading(self, now: float) -> None:
        """Keep the state just received (taken at ``now``) until what answers it arrives."""
        if not self.active or now - self.last_reading < 0.95 / self.fps:
            return  # not recording, or a driver faster than the control rate
        reading = self._frame(parts=("state",))
        if reading is not None:
            self.pending, self.answer, self.since, self.last_reading = reading, None, set(), now

    def _write_pending(self) -> None:
        """Write the held reading as a frame: with the commands that answered it, else with
        the latest ones (none yet this episode: no frame)."""
        reading, self.pending = self.pending, None
        if reading is None or not self.active:
            return
        answer = self.answer
        if answer is None:
            if not self._complete():
                return
            answer = self._frame(parts=("action", "images"))
        frame = reading | answer
        if self.writer is None:
            self.writer = DatasetWriter.create(self.out, self.fps, self._features(frame),
                                               robot_type=self.robot_type)  # fmt: skip
        elif self.frames == 0 and not self._matches(frame):
            return
        self.writer.add_frame(frame)
        self.frames += 1
        if self.params["bag"] and self.bag is None:
            self._open_bag()

    def _frame(
        self, parts: tuple[str, ...] = ("state", "action", "images")
    ) -> dict[str, np.ndarray] | None:
        """The latest message of the streams of ``parts`` as (part of) a frame; None while the
        state cannot be read yet."""
        frame: dict[str, np.ndarray] = {}
        if "action" in parts:
            action = np.concatenate([np.asarray(self.latest[k].data) for k in self.action_keys])
            frame["action"] = action.astype(np.float32)
        if "images" in parts:
            for key, cam in self.cameras.items():
                topic = self.subscriptions[key].topic
                frame[f"observation.images.{cam}"] = image_array(topic, self.latest[key])
        if "state" not in parts:
            return frame
        if self.joints is not None:
            try:
                q, dq = self.joints.arrays()
            except ValueError:
                return None  # a joint never read yet
            if dq is None:
                if not self._warned_velocity:
                    self.log("joint_states carry no velocities; use state_topic")
                    self._warned_velocity = True
                return None
            state = np.concatenate([q, dq])
        else:
            state = np.asarray(self.latest["state"].data, np.float64)
        return {"observation.state": state.astype(np.float32), **frame}

    def _features(self, frame: dict[str, np.ndarray]) -> dict[str, Feature]:
        """The dataset's features, from the first frame (names only where they fit)."""
        names = {"observation.state": self.state_names, "action": self.action_names}
        features = {}
        for key, v in frame.items():
            if key in names:
                fit = names[key] is not None and len(names[key]) == len(v)
                features[key] = Feature("float32", v.shape, names[key] if fit else None)
            else:
                features[key] = Feature("video", v.shape)
        return features

    def _matches(self, frame: dict[str, np.ndarray]) -> bool:
        """A resumed dataset's features fit this episode's frames (else the episode is dropped)."""
        have = {k: tuple(f.shape) for k, f in self.writer.features.items()}
        want = {k: tuple(v.shape) for k, v in frame.items()}
        if have != want:
            self._drop(f"dataset {self.out} has features {have}, these frames {want}")
        return have == want

    # -- bags ----------------------------------------------------------------------------
    def _to_bag(self, key: str, msg: Any) -> None:
        if not (self.params["bag"] and self.active):
            return
        topic = "/" + self.subscriptions[key].topic.lstrip("/~")
        stamp = self.clock.stamp()
        item = (topic, msg, stamp.sec * NS + stamp.nanosec)
        if self.bag is None:
            self.preroll.append(item)  # the dataset directory holds no bag before the dataset
        else:
            self.bag.write(*item)

    def _open_bag(self) -> None:
        self.bag_path = self.out / "bags" / f"episode_{self.writer.num_episodes}"
        if self.bag_path.exists():  # left by a run killed during this (never saved) episode
            shutil.rmtree(self.bag_path)
        self.bag_path.parent.mkdir(exist_ok=True)
        self.bag = BagWriter(self.bag_path)
        for item in self.preroll:
            self.bag.write(*item)
        self.preroll = []

    def _close_bag(self, keep: bool) -> None:
        if self.bag is not None:
            self.bag.close()
            if not keep:
                shutil.rmtree(self.bag_path, ignore_errors=True)
        self.bag = None

    def shutdown(self) -> None:
        self._drop("the node stopped")
        if self.writer is not None:
            self.writer.close()
        self.log(f"{self.saved} episodes saved to {self.out}")
