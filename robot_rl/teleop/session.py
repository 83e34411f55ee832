"""Teleop and recording sessions: drive a simulated env from a device, optionally recording each
episode into a LeRobot dataset.

Phases: *reset* (waiting for Enter/Start; the scene for the next episode is drawn on start) →
*episode* (stepping at the env's control rate) → back to *reset* once the episode is finished by a
key or by the env (success/failure/time limit). Every kept episode is committed with
``DatasetWriter.save_episode`` before the next starts, so a kill loses only the one in progress.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import numpy as np
import torch

from robot_rl.data import DatasetWriter
from robot_rl.envs.vec_env import VecEnv
from robot_rl.teleop.command import Event
from robot_rl.teleop.devices import Device

FrameColumns = Callable[[dict[str, torch.Tensor]], dict[str, np.ndarray]]
"""Stacked step records (T, ...) → dataset columns (the collector's ``episode_frames``)."""


class Mapping(Protocol):
    action_dim: int

    def reset(self) -> None: ...
    def __call__(self, cmd: Any) -> np.ndarray: ...
    def describe(self) -> str: ...


class Recorder:
    """Buffers one episode frame by frame into ``writer`` and commits or drops it.

    Args:
        writer: an open dataset writer (created or resumed); closed by :meth:`close`.
        columns: step records → dataset columns, the same conversion ``robot-rl collect`` uses.
        record_images: also keep the env's ``image`` observation.
        on_saved: called with ``(episode index, task)`` once an episode is committed (e.g. to
            write it as a rosbag2 too).
    """

    def __init__(
        self,
        writer: DatasetWriter,
        columns: FrameColumns,
        record_images: bool,
        on_saved: Callable[[int, str], None] | None = None,
    ) -> None:
        self.writer, self.columns, self.record_images = writer, columns, record_images
        self.on_saved = on_saved
        self.frames = 0

    def add(self, rec: dict[str, torch.Tensor]) -> None:
        """One step record, tensors without the batch axis."""
        cols = self.columns({k: v[None] for k, v in rec.items()})
        self.writer.add_frame({k: v[0] for k, v in cols.items()})
        self.frames += 1

    def save(self, task: str, success: bool) -> int:
        """Commit the episode (durable on return); returns its index."""
        index = self.writer.save_episode(task, extras={"success": success})
        self.frames = 0
        if self.on_saved is not None:
            self.on_saved(index, task)
        return index

    def discard(self) -> None:
        self.writer.discard_episode()
        self.frames = 0

    def close(self) -> None:
        self.writer.close()


@dataclass
class SessionResult:
    saved: int = 0
    successes: int = 0
    discarded: int = 0
    quit: bool = False


class Session:
    """The teleop loop. ``recorder=None`` drives only (``robot-rl teleop``); with a recorder it
    stops after ``episodes`` kept episodes.

    Args:
        env: a VecEnv with ``num_envs == 1``.
        device: the input device (polled once per control step, every 20 ms between episodes).
        mapping: device command → action (action_dim,).
        instruction: the text stored with every recorded episode.
        seed: scene k (0, 1, …) is reset with ``seed + k``; a re-record reuses its seed.
        speed: multiple of real time (1 = the env's control rate); 0 runs unthrottled.
        wait_for_start: begin each episode on Enter/Start (recording) instead of at once.
        out: where the key map, event lines and the live status line go.
    """

    def __init__(
        self,
        env: VecEnv,
        device: Device,
        mapping: Mapping,
        *,
        instruction: str,
        recorder: Recorder | None = None,
        episodes: int | None = None,
        seed: int = 0,
        speed: float = 1.0,
        wait_for_start: bool = True,
        out: TextIO = sys.stdout,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if env.num_envs != 1:
            raise ValueError(f"teleop drives one env, got num_envs={env.num_envs}")
        self.env, self.device, self.mapping, self.recorder = env, device, mapping, recorder
        self.instruction, self.episodes, self.seed = instruction, episodes, seed
        self.dt = env.control_dt / speed if speed > 0 else 0.0
        self.wait_for_start, self.out = wait_for_start, out
        self.clock, self.sleep = clock, sleep
        self.result = SessionResult()
        self.scene = 0
        self.step = 0
        self.success = False
        self._obs: dict[str, torch.Tensor] | None = None
        self._last_status = -1.0

    # -- output ---------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """A permanent line (clears the status line first)."""
        self.out.write(f"\r\x1b[K{line}\n")
        self.out.flush()

    def status(self, text: str, force: bool = False) -> None:
        """Rewrite the live status line, at most 10 times a second."""
        now = self.clock()
        if force or now - self._last_status >= 0.1:
            self.out.write(f"\r\x1b[K{text}")
            self.out.flush()
            self._last_status = now

    # -- phases ----------------------------------------------------------------------------

    def _label(self) -> str:
        k = self.result.saved + 1
        return f"episode {k}/{self.episodes}" if self.episodes else f"episode {k}"

    def _begin(self, same_scene: bool = False) -> None:
        if not same_scene:
            self.scene += 1
        self._obs = self.env.reset(seed=self.seed + self.scene - 1)
        self.mapping.reset()
        self.step, self.success = 0, False
        verb = "re-recording" if same_scene else ("recording" if self.recorder else "driving")
        self.say(f"{verb} {self._label()} (scene {self.scene})")

    def _drop(self, why: str) -> None:
        if self.recorder is not None:
            self.recorder.discard()
        self.result.discarded += 1
        self.say(f"{why} {self._label()} after {self.step} steps")

    def _finish(self, success: bool, how: str) -> None:
        """End the episode: keep it (recording) with ``success`` as its label."""
        self.result.successes += success
        verdict = "success" if success else "failure"
        if self.recorder is None:
            self.say(f"finished {self._label()} ({how}): {verdict} after {self.step} steps")
            self.result.saved += 1
            return
        if self.recorder.frames == 0:
            self._drop("nothing to save:")
            return
        frames = self.recorder.frames
        index = self.recorder.save(self.instruction, success)
        self.result.saved += 1
        self.say(f"saved episode {index}: {frames} frames, {verdict} ({how})")

    def _step(self, action: np.ndarray) -> bool:
        """One control step; returns whether the env ended the episode."""
        assert self._obs is not None
        act = torch.as_tensor(action, dtype=torch.float32).reshape(1, -1)
        rec = {"observation.state": self._obs["state"][0].cpu(), "action": act[0]}
        if self.recorder is not None and self.recorder.record_images and "image" in self._obs:
            rec["image"] = self._obs["image"][0].cpu()
        self._obs, reward, terminated, truncated, info = self.env.step(act)
        self.step += 1
        self.success = bool(info["success"][0])
        if self.recorder is not None:
            rec["next.reward"] = reward[:1].cpu()
            rec["next.done"] = terminated[:1].cpu()
            rec["next.success"] = info["success"][:1].cpu()
            self.recorder.add(rec)
        return bool(terminated[0] | truncated[0])

    def _done(self) -> bool:
        return self.episodes is not None and self.result.saved >= self.episodes

    def run(self) -> SessionResult:
        """Run until ``episodes`` are kept or the operator quits; the episode in progress at a
        quit, Ctrl-C or error is dropped, the kept ones stay committed."""
        active = False
        if self.wait_for_start:
            self.say(f"set up the scene, then press Enter/Start for {self._label()}")
        else:
            self._begin()
            active = True
        try:
            while not self._done():
                t0 = self.clock()
                cmd = self.device.poll()
                stepping = active  # an episode begun by this poll's events steps from the next
                for ev in cmd.events:
                    if ev is Event.QUIT:
                        if active:
                            self._drop("quit: dropped")
                        self.result.quit = True
                        return self.result
                    if not active:
                        if ev is Event.START:
                            self._begin()
                            active = True
                        continue
                    if ev in (Event.SUCCESS, Event.FAILURE):
                        self._finish(ev is Event.SUCCESS, "operator")
                    elif ev is Event.RERECORD:
                        self._drop("re-record: dropped")
                        self._begin(same_scene=True)
                        stepping = False
                        continue
                    elif ev is Event.DISCARD:
                        self._drop("discarded")
                    else:
                        continue
                    active = self._next_after_finish()
                    stepping = False
                    break
                if active and stepping:
                    ended = self._step(self.mapping(cmd))
                    if ended:
                        self._finish(self.success, "env" if self.success else "time limit/env")
                        active = self._next_after_finish()
                self._show(active)
                wait = (self.dt if active else 0.02) - (self.clock() - t0)
                if wait > 0:
                    self.sleep(wait)
        except BaseException:
            if active and self.recorder is not None and self.recorder.frames:
                self.recorder.discard()
            raise
        finally:
            self.out.write("\r\x1b[K")
            self.out.flush()
        return self.result

    def _next_after_finish(self) -> bool:
        """After an episode: wait for Start (recording), or begin the next at once (driving)."""
        if self._done():
            return False
        if self.wait_for_start:
            self.say(f"reset the scene, then press Enter/Start for {self._label()}")
            return False
        self._begin()
        return True

    def _show(self, active: bool) -> None:
        if active:
            grip = self.mapping.describe()
            mode = "REC" if self.recorder else "drive"
            self.status(
                f"[{mode}] {self._label()}  step {self.step}/{self.env.max_episode_steps}  "
                f"success {'yes' if self.success else 'no'}  {grip}"
            )
        else:
            self.status(f"[waiting] Enter/Start: {self._label()}   q: quit")
