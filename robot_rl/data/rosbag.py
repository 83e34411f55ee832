"""rosbag2 (MCAP) <-> LeRobot v3 datasets: write an episode as a bag, convert a bag to a dataset.

Bag layout written by :class:`BagWriter` (all CDR from :mod:`robot_rl.msgs`):

=====================================  ===============================  =========================
topic                                  type                             holds
=====================================  ===============================  =========================
``/observation/state``                 ``std_msgs/msg/Float64MultiArray``  state vector per frame
``/action``                            ``std_msgs/msg/Float64MultiArray``  action vector per frame
``/camera/<name>/image_raw``           ``sensor_msgs/msg/Image`` (rgb8)    one per camera per frame
``/instruction``                       ``std_msgs/msg/String``             once, at episode start
=====================================  ===============================  =========================

Frame ``i`` is stamped ``start + i / fps`` (bag time and header stamp). A multi-array has one
dimension whose label is the comma-joined entry names when there are names (else ``state`` /
``action``), since ``std_msgs/MultiArrayLayout`` has no per-entry labels.

The message classes come from ``robot_rl.msgs`` (the ROS 2 message types, no transport: the
one place they are defined).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.core.errors import DatasetError

STATE_TOPIC = "/observation/state"
ACTION_TOPIC = "/action"
INSTRUCTION_TOPIC = "/instruction"
CAMERA_TOPIC = "/camera/{name}/image_raw"
IMAGE_PREFIX = "observation.images."
MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
STRING = "std_msgs/msg/String"
NS = 1_000_000_000


def tick_ns(start_ns: int, i: int | np.ndarray, fps: float) -> Any:
    """Bag time of frame ``i`` of a ``fps`` timeline starting at ``start_ns`` (integer ns)."""
    return start_ns + np.round(np.asarray(i, dtype=np.float64) * NS / fps).astype(np.int64)


@dataclass(frozen=True)
class BagTopics:
    """Where each part of an episode goes in a bag; ``camera`` is formatted with ``name``."""

    state: str = STATE_TOPIC
    action: str = ACTION_TOPIC
    instruction: str = INSTRUCTION_TOPIC
    camera: str = CAMERA_TOPIC


class BagWriter:
    """Writes frames of an episode into a rosbag2 directory with MCAP storage, frame by frame.

    Use as a context manager; connections are added on first use of each topic.
    """

    def __init__(self, path: str | Path, *, topics: BagTopics = BagTopics(), version: int = 8):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.path, self.topics = Path(path), topics
        if self.path.exists():
            raise DatasetError(f"{self.path} already exists; a bag is written to a new directory")
        self._store = get_typestore(Stores.ROS2_HUMBLE)  # message definitions for the schemas
        self._writer = Writer(self.path, version=version, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns: dict[str, Any] = {}

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Any `robot_rl.msgs` message on ``topic`` at bag time ``t_ns``."""
        from robot_rl.msgs import ros_name

        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(
                topic, ros_name(type(msg)), typestore=self._store
            )
        self._writer.write(self._conns[topic], int(t_ns), msg.serialize())

    def write_vector(
        self, topic: str, values: np.ndarray, t_ns: int, names: Sequence[str] | None = None
    ) -> None:
        """One ``Float64MultiArray``; ``values`` shape ``(D,)``."""
        from robot_rl import msgs

        v = np.asarray(values, dtype=np.float64).reshape(-1)
        label = ",".join(names) if names else topic.rsplit("/", 1)[-1]
        dim = msgs.MultiArrayDimension(label=label, size=len(v), stride=len(v))
        layout = msgs.MultiArrayLayout(dim=[dim], data_offset=0)
        self.write(topic, msgs.Float64MultiArray(layout=layout, data=v.tolist()), t_ns)

    def write_image(self, name: str, frame: np.ndarray, t_ns: int) -> None:
        """One rgb8 ``Image`` on the topic of camera ``name``; ``frame``: (H, W, 3) uint8."""
        from robot_rl import msgs

        f = np.ascontiguousarray(frame, dtype=np.uint8)
        if f.ndim != 3 or f.shape[2] != 3:
            raise DatasetError(f"camera {name!r}: frames must be (H, W, 3) uint8, got {f.shape}")
        stamp = msgs.Time(sec=int(t_ns) // NS, nanosec=int(t_ns) % NS)
        header = msgs.Header(stamp=stamp, frame_id=name)
        img = msgs.Image(
            header=header, height=f.shape[0], width=f.shape[1], encoding="rgb8",
            is_bigendian=0, step=3 * f.shape[1], data=f.tobytes(),
        )  # fmt: skip
        self.write(self.topics.camera.format(name=name), img, t_ns)

    def write_instruction(self, text: str, t_ns: int) -> None:
        """The episode's instruction as a ``String``."""
        from robot_rl import msgs

        self.write(self.topics.instruction, msgs.String(data=text), t_ns)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_episode_bag(
    path: str | Path,
    episode: Mapping[str, np.ndarray],
    *,
    fps: float,
    task: str = "",
    start: float | None = None,
    names: Mapping[str, Sequence[str] | None] | None = None,
    topics: BagTopics = BagTopics(),
) -> Path:
    """Write one episode as an MCAP rosbag2 directory at ``path``; returns ``path``.

    ``episode`` is what ``LeRobotDataset.episode(i)`` returns: ``observation.state`` ``(T, D)``,
    ``action`` ``(T, A)``, ``observation.images.<cam>`` ``(T, H, W, 3)`` uint8 (all optional but
    one). ``names`` gives entry names per feature (e.g. ``dataset.features[k].names``). Frame ``i``
    is stamped ``start + i / fps`` (``start`` defaults to now).
    """
    names = names or {}
    vectors = [("observation.state", topics.state), ("action", topics.action)]
    vectors = [(k, t) for k, t in vectors if k in episode]
    cams = sorted(k for k in episode if k.startswith(IMAGE_PREFIX))
    lengths = {len(episode[k]) for k in [k for k, _ in vectors] + cams}
    if len(lengths) != 1 or 0 in lengths:
        raise DatasetError(f"episode arrays must share one length T > 0, got lengths {lengths}")
    start = time.time() if start is None else start
    whole = math.floor(start)  # split first: float64 seconds * 1e9 would lose ~100 ns
    start_ns = whole * NS + round((start - whole) * NS)
    with BagWriter(path, topics=topics) as bag:
        if task:
            bag.write_instruction(task, start_ns)
        for i in range(lengths.pop()):
            t = int(tick_ns(start_ns, i, fps))
            for key, topic in vectors:
                bag.write_vector(topic, episode[key][i], t, names.get(key))
            for key in cams:
                bag.write_image(key[len(IMAGE_PREFIX) :], episode[key][i], t)
    return Path(path)


# -- bag -> dataset ----------------------------------------------------------------------------

STATE_TYPES = (MULTI_ARRAY, JOINT_STATE)  # a robot bag has /joint_states; actions are arrays


@dataclass
class _Stream:
    """The messages of one topic in bag-time order: ``times`` int64 ns, shape (N,)."""

    topic: str
    msgtype: str
    times: np.ndarray
    msgs: list[Any]


def bag_topics(bag: str | Path) -> dict[str, str]:
    """``{topic: message type}`` of a rosbag2 directory or a bare ``.mcap`` / ``.db3`` file."""
    with _reader(bag) as r:
        return {c.topic: c.msgtype for c in r.connections}


def _reader(bag: str | Path) -> Any:
    from rosbags.rosbag2 import Reader

    path = Path(bag)
    if not path.exists():
        raise DatasetError(f"bag {path} does not exist")
    try:
        return Reader(path)
    except Exception as e:  # rosbags raises its own ReaderError / YAML errors for non-bags
        raise DatasetError(f"{path} is not a readable rosbag2: {e}") from None


def _read(bag: str | Path, wanted: Mapping[str, tuple[str, ...]]) -> dict[str, _Stream]:
    """Deserialize every message of the ``wanted`` topics (topic -> accepted types)."""
    from robot_rl.msgs import MESSAGES

    with _reader(bag) as r:
        have = {c.topic: c.msgtype for c in r.connections}
        for topic, types in wanted.items():
            if topic not in have:
                raise DatasetError(f"topic {topic!r} is not in {bag}; it has {sorted(have)}")
            if have[topic] not in types:
                raise DatasetError(
                    f"topic {topic!r} in {bag} carries {have[topic]}, expected {' or '.join(types)}"
                )
        raw: dict[str, list[tuple[int, Any]]] = {t: [] for t in wanted}
        conns = [c for c in r.connections if c.topic in wanted]
        for c, t, data in r.messages(connections=conns):
            raw[c.topic].append((t, MESSAGES[c.msgtype].deserialize(bytes(data))))
    out = {}
    for topic, items in raw.items():
        if not items:
            raise DatasetError(f"topic {topic!r} in {bag} has no messages")
        items.sort(key=lambda x: x[0])
        times = np.array([t for t, _ in items], dtype=np.int64)
        out[topic] = _Stream(topic, have[topic], times, [m for _, m in items])
    return out


def _vectors(s: _Stream) -> tuple[np.ndarray, list[str] | None]:
    """``(N, D)`` float64 values of a multi-array or JointState stream and entry names if known.

    A JointState gives positions, then velocities when the first message has one per joint.
    """
    if s.msgtype == JOINT_STATE:
        first = s.msgs[0]
        with_vel = len(first.velocity) == len(first.position) > 0
        rows = [list(m.position) + (list(m.velocity) if with_vel else []) for m in s.msgs]
        names = [f"{n}.pos" for n in first.name] + [f"{n}.vel" for n in first.name] * with_vel
    else:
        rows = [list(m.data) for m in s.msgs]
        dims = s.msgs[0].layout.dim
        names = dims[0].label.split(",") if len(dims) == 1 else None
    sizes = {len(r) for r in rows}
    if len(sizes) != 1 or 0 in sizes:
        raise DatasetError(f"topic {s.topic!r}: message lengths vary or are empty: {sorted(sizes)}")
    d = sizes.pop()
    return np.array(rows, dtype=np.float64), (names if names and len(names) == d else None)


def image_array(topic: str, m: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an rgb8 / bgr8 / rgba8 / bgra8 / mono8 ``Image``."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    c = channels.get(m.encoding)
    if c is None:
        raise DatasetError(f"topic {topic!r}: image encoding {m.encoding!r} is not one of "
                           f"{sorted(channels)}")  # fmt: skip
    rows = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)
    img = rows[:, : m.width * c].reshape(m.height, m.width, c)
    if c == 1:
        return np.repeat(img, 3, axis=2)
    return img[..., 2::-1] if m.encoding.startswith("bgr") else img[..., :3]


def camera_name(topic: str) -> str:
    """``/camera/front/image_raw`` -> ``front``; other topics -> their path joined by ``_``."""
    parts = topic.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "camera" and parts[2] == "image_raw":
        return parts[1]
    return "_".join(parts)


def align(times: Sequence[np.ndarray], fps: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Zero-order hold of several streams onto one ``fps`` grid.

    The grid starts half a period after the earliest message of any stream, so a stream
    published at about ``fps`` lands once per tick despite jitter (a grid on the messages'
    own times would catch each one or its predecessor at random). It ends half a period after
    the last message; ticks before every stream has its first message are dropped. Returns the
    ticks (ns, shape (K,)) and, per stream, the index of its latest message at or before each
    tick (shape (K,)).
    """
    half = int(round(NS / (2.0 * fps)))  # integer ns: bag times are ~1.7e18, beyond float64
    start, ready = min(int(t[0]) for t in times), max(int(t[0]) for t in times)
    end = max(int(t[-1]) for t in times)
    ticks = tick_ns(start + half, np.arange(int((end - start) * fps // NS) + 2), fps)
    ticks = ticks[(ticks >= ready) & (ticks <= end + half)]
    return ticks, [np.searchsorted(t, ticks, side="right") - 1 for t in times]


def answering(
    state_times: np.ndarray,
    action_times: np.ndarray,
    ticks: np.ndarray,
    held: np.ndarray,
    fps: float,
) -> np.ndarray:
    """For each tick, the action that answers its state: the first action written at or after
    that state, if it came before the next tick; otherwise the action held at the tick
    (``held``). A controller's command comes a few ms after the reading it answers, so the
    latest action at the tick would pair each state with the previous state's command."""
    first = np.searchsorted(action_times, state_times, side="left")
    ok = first < len(action_times)
    never = np.iinfo(np.int64).max  # integer ns throughout: float64 cannot hold bag times
    arrives = np.where(ok, action_times[np.minimum(first, len(action_times) - 1)], never)
    period = int(round(NS / fps))
    return np.where(ok & (arrives < ticks + period), first, held)


def bag_to_dataset(
    bag: str | Path,
    out: str | Path,
    *,
    fps: int,
    state_topic: str = STATE_TOPIC,
    action_topic: str = ACTION_TOPIC,
    image_topics: Sequence[str] | None = None,
    instruction_topic: str = INSTRUCTION_TOPIC,
    task: str | None = None,
    overwrite: bool = False,
) -> Any:
    """Convert a rosbag2 / MCAP bag into a LeRobot v3 dataset at ``out``; returns its reader.

    Every topic is aligned to a ``fps`` timeline by zero-order hold (:func:`align`); the action
    of a frame is the command that answers its state (:func:`answering`). State comes
    from a ``Float64MultiArray`` or a ``JointState`` (positions, then velocities), the action from
    a ``Float64MultiArray``, each image topic becomes ``observation.images.<camera_name(topic)>``.
    ``image_topics=None`` takes every ``sensor_msgs/msg/Image`` topic in the bag. When the bag
    has ``instruction_topic``, each message on it starts a new episode whose task is its text
    (``task`` overrides the text); otherwise the bag is one episode and ``task`` is required.
    """
    from robot_rl.data.features import Feature
    from robot_rl.data.reader import LeRobotDataset
    from robot_rl.data.writer import DatasetWriter

    if not (isinstance(fps, int) and fps >= 1):
        raise DatasetError(f"fps must be an integer >= 1, got {fps!r}")
    topics = bag_topics(bag)
    if image_topics is None:
        image_topics = sorted(t for t, typ in topics.items() if typ == IMAGE)
    roles = [state_topic, action_topic, *image_topics]
    repeated = sorted({t for t in roles if roles.count(t) > 1})
    if repeated:
        raise DatasetError(f"topics {repeated} are given for more than one of state/action/images")
    wanted = {state_topic: STATE_TYPES, action_topic: (MULTI_ARRAY,)}
    wanted |= {t: (IMAGE,) for t in image_topics}
    has_instruction = instruction_topic in topics and instruction_topic not in wanted
    if has_instruction:
        wanted[instruction_topic] = (STRING,)
    streams = _read(bag, wanted)  # checks topics and types first
    if not (has_instruction or task):
        raise DatasetError(f'{bag} has no {instruction_topic!r} topic; pass task="..."')
    data = [s for t, s in streams.items() if t != instruction_topic]
    ticks, idx = align([s.times for s in data], fps)
    if len(ticks) == 0:
        raise DatasetError(f"{bag}: no tick at {fps} fps has a message from every topic")
    state, state_names = _vectors(streams[state_topic])
    action, action_names = _vectors(streams[action_topic])
    frames: dict[str, np.ndarray] = {
        "observation.state": state[idx[0]].astype(np.float32),
        "action": action[
            answering(data[0].times[idx[0]], data[1].times, ticks, idx[1], fps)
        ].astype(np.float32),
    }
    features = {
        "observation.state": Feature("float32", (state.shape[1],), state_names),
        "action": Feature("float32", (action.shape[1],), action_names),
    }
    for s, i in zip(data[2:], idx[2:], strict=True):
        key = IMAGE_PREFIX + camera_name(s.topic)
        frames[key] = np.stack([image_array(s.topic, s.msgs[j]) for j in i])
        features[key] = Feature("video", frames[key].shape[1:])
    if has_instruction:  # ticks before the first instruction belong to the first episode
        ins = streams[instruction_topic]
        episode = np.maximum(np.searchsorted(ins.times, ticks, side="right") - 1, 0)
        texts = [m.data for m in ins.msgs]
    else:
        episode, texts = np.zeros(len(ticks), dtype=np.int64), [""]
    with DatasetWriter.create(out, fps, features, robot_type="rosbag", overwrite=overwrite) as w:
        for e in np.unique(episode):
            sel = episode == e
            w.add_episode({k: v[sel] for k, v in frames.items()}, task or texts[e])
    return LeRobotDataset(out)
