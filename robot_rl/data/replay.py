"""Replay buffer for N parallel envs, resident on the training device, with n-step targets.

Transitions are written one vector step at a time into a time-major ring: row ``t`` holds the
``N`` transitions of step ``t`` (observation, action, reward, terminated, truncated, next
observation). For an env that finished at step ``t`` the next observation is the *final*
observation of its episode (``info["final_obs"]``), not the first one of the next episode, so
nothing leaks across an auto-reset.

n-step targets are formed at sampling time by walking forward from the sampled row in the same
env's column:

    G = sum_{k<K} gamma^k r_{t+k},     bootstrap from next_obs_{t+K-1} with gamma^K,

where ``K <= n`` stops early at the first done step (its reward still counts) or at the newest
row. A termination zeroes the bootstrap (``discount = 0``); a truncation keeps it, bootstrapping
from the final observation (Pardo et al. 2018, "Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from robot_rl.core.errors import ConfigError

Batch = dict[str, torch.Tensor]


class ReplayBuffer:
    """Ring buffer of ``capacity`` vector steps of ``num_envs`` envs.

    Args:
        capacity: vector steps kept (transitions kept = ``capacity * num_envs``).
        num_envs: N, the width of every :meth:`add`.
        obs_shapes: ``{key: shape}`` of the observation entries (e.g. ``{"state": (40,)}``).
        action_dim: A.
        device: where every tensor lives (sampling never leaves it).
        obs_dtypes: dtype per observation key (default float32; e.g. uint8 images).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shapes: Mapping[str, tuple[int, ...]],
        action_dim: int,
        *,
        device: str | torch.device = "cpu",
        obs_dtypes: Mapping[str, torch.dtype] | None = None,
    ) -> None:
        if capacity < 1 or num_envs < 1 or action_dim < 1:
            raise ConfigError(
                f"replay capacity, num_envs and action_dim must be >= 1, got {capacity}, "
                f"{num_envs}, {action_dim}"
            )
        self.capacity, self.num_envs, self.device = capacity, num_envs, torch.device(device)
        dtypes = dict(obs_dtypes or {})
        shape = (capacity, num_envs)

        def zeros(*tail: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, *tail, dtype=dtype, device=self.device)

        self.obs = {k: zeros(*s, dtype=dtypes.get(k, torch.float32)) for k, s in obs_shapes.items()}
        self.next_obs = {
            k: zeros(*s, dtype=dtypes.get(k, torch.float32)) for k, s in obs_shapes.items()
        }
        self.action = zeros(action_dim)
        self.reward = zeros()
        self.terminated = zeros(dtype=torch.bool)
        self.truncated = zeros(dtype=torch.bool)
        self.extras: dict[str, torch.Tensor] = {}
        self.head = 0  # next row to write
        self.rows = 0  # rows written so far (<= capacity)

    def __len__(self) -> int:
        """Transitions held."""
        return self.rows * self.num_envs

    def add(
        self,
        obs: Mapping[str, torch.Tensor],
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        next_obs: Mapping[str, torch.Tensor],
        **extras: torch.Tensor,
    ) -> None:
        """Write one vector step. Shapes: ``obs[k]``/``next_obs[k]`` ``(N, *shape)``, ``action``
        ``(N, A)``, ``reward``/``terminated``/``truncated`` ``(N,)``; ``extras`` (e.g. the base
        action) ``(N, ...)``, stored and returned by :meth:`sample` under their names. An extra
        named ``next_*`` describes the next observation: sampling reads it at the bootstrap row
        of the n-step window (like ``next_obs``), every other extra at the sampled row."""
        self.extend(
            {k: v[None] for k, v in obs.items()},
            action[None],
            reward[None],
            terminated[None],
            truncated[None],
            {k: v[None] for k, v in next_obs.items()},
            **{k: v[None] for k, v in extras.items()},
        )

    def extend(
        self,
        obs: Mapping[str, torch.Tensor],
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        next_obs: Mapping[str, torch.Tensor],
        **extras: torch.Tensor,
    ) -> None:
        """Write ``T`` vector steps at once: every argument of :meth:`add` with a leading time
        axis ``(T, N, ...)`` (demonstrations load this way). Beyond ``capacity`` steps only the
        newest are kept."""
        t, n = action.shape[0], self.num_envs
        if action.shape[1:] != self.action.shape[1:]:
            raise ValueError(
                f"action must be (T, {n}, {self.action.shape[2]}), got {tuple(action.shape)}"
            )
        for name, v in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            if v.shape != (t, n):
                raise ValueError(f"{name} must have shape ({n},) per step, got {tuple(v.shape)}")
        rows = (self.head + torch.arange(t, device=self.device)) % self.capacity
        columns = [(self.obs[k], obs[k]) for k in self.obs]
        columns += [(self.next_obs[k], next_obs[k]) for k in self.obs]
        columns += [(self.action, action), (self.reward, reward)]
        columns += [(self.terminated, terminated), (self.truncated, truncated)]
        for k, v in extras.items():
            if k not in self.extras:
                self.extras[k] = torch.zeros(
                    self.capacity, n, *v.shape[2:], dtype=v.dtype, device=self.device
                )
            columns.append((self.extras[k], v))
        keep = slice(max(0, t - self.capacity), t)  # later rows overwrite earlier ones
        for store, values in columns:
            store[rows[keep]] = values[keep].to(self.device, store.dtype)
        self.head = (self.head + t) % self.capacity
        self.rows = min(self.rows + t, self.capacity)

    def _columns(self) -> dict[str, torch.Tensor]:
        """Every stored column by name, whole (``capacity`` rows)."""
        tensors = {f"obs.{k}": v for k, v in self.obs.items()}
        tensors |= {f"next_obs.{k}": v for k, v in self.next_obs.items()}
        tensors |= {"action": self.action, "reward": self.reward}
        tensors |= {"terminated": self.terminated, "truncated": self.truncated}
        return tensors | {f"extras.{k}": v for k, v in self.extras.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every stored column by name, its written rows only (``[:rows]``: until the ring wraps
        the head is at ``rows``), for a resumable checkpoint (with ``head`` and ``rows``;
        :meth:`load_state_tensors` puts them back)."""
        return {k: v[: self.rows] for k, v in self._columns().items()}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], head: int, rows: int) -> None:
        """Restore :meth:`state_tensors` into a buffer of the same width and shapes and a
        capacity of at least ``rows`` (the saved capacity once the ring wrapped). Columns saved
        whole (``capacity`` rows, as checkpoints before the rows-only format) are read to
        ``rows``. A mismatch is a one-line ``ValueError`` and leaves this buffer as it was.
        Rows past ``rows`` keep whatever they held: sampling never reads them."""
        if not (0 <= rows <= self.capacity and 0 <= head < self.capacity):
            raise ValueError(f"replay head {head} / rows {rows} outside capacity {self.capacity}")
        if rows < self.capacity and head != rows:
            raise ValueError(f"replay head {head} must equal rows {rows} until the ring wraps")
        want = {k: v[:rows] for k, v in self._columns().items()}
        missing = sorted(set(want) - set(tensors))
        if missing:
            raise ValueError(f"replay state lacks {missing}")
        saved = {
            k: (v[:rows] if v.shape[:1] == (self.capacity,) else v) for k, v in tensors.items()
        }
        for k, v in saved.items():
            ref = want.get(k)
            shape = (rows, self.num_envs)
            if (ref is not None and (v.shape != ref.shape or v.dtype != ref.dtype)) or (
                k.startswith("extras.") and tuple(v.shape[:2]) != shape
            ):
                raise ValueError(
                    f"replay column {k} is {tuple(v.shape)} {v.dtype}, this buffer holds "
                    f"{tuple(ref.shape) if ref is not None else shape} (rows x envs)"
                )
        for k, v in saved.items():
            if k.startswith("extras."):  # rebuilt at full capacity, whatever this buffer had
                column = torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=self.device)
                column[:rows] = v
                self.extras[k.removeprefix("extras.")] = column
            elif k in want:
                want[k].copy_(v)
        self.head, self.rows = head, rows

    def cut_episodes(self) -> None:
        """Make the newest row's transitions truncations: collection stopped there and the
        envs start new episodes (a resumed run), so no n-step window runs past it and each
        bootstraps from the next observation it stored."""
        if self.rows:
            self.truncated[(self.head - 1) % self.capacity] = True

    def sample(
        self,
        batch_size: int,
        n_step: int = 1,
        gamma: float = 0.99,
        generator: torch.Generator | None = None,
    ) -> Batch:
        """``batch_size`` transitions drawn uniformly, with n-step targets.

        Returns ``obs``/``next_obs`` entries as ``obs.<key>``/``next_obs.<key>`` ``(B, ...)``,
        ``action (B, A)``, ``reward (B,)`` (the discounted n-step sum), ``discount (B,)``
        (``gamma^K``, 0 after a termination), ``steps (B,)`` (K), and each extra.
        """
        if self.rows == 0:
            raise ValueError("the replay buffer is empty")
        if n_step < 1:
            raise ConfigError(f"n_step must be >= 1, got {n_step}")
        dev = self.device
        age = torch.randint(0, self.rows, (batch_size,), generator=generator, device=dev)
        env = torch.randint(0, self.num_envs, (batch_size,), generator=generator, device=dev)
        return self.gather(age, env, n_step, gamma)

    def gather(self, age: torch.Tensor, env: torch.Tensor, n_step: int, gamma: float) -> Batch:
        """Transitions at ``age`` (B,) rows back from the oldest row held (0 = oldest) in envs
        ``env`` (B,), with their n-step targets (see :meth:`sample`)."""
        oldest = (self.head - self.rows) % self.capacity
        start = (oldest + age) % self.capacity
        ahead = torch.arange(n_step, device=self.device)
        rows = (start[:, None] + ahead) % self.capacity  # (B, n)
        cols = env[:, None].expand_as(rows)
        # Rows past the newest one do not exist yet: the window stops there.
        exists = (age[:, None] + ahead) < self.rows
        done = self.terminated[rows, cols] | self.truncated[rows, cols]  # only the (B, n) window
        # Step k counts if every earlier step in the window was not done.
        ended_before = torch.cumsum(done.long(), dim=1) - done.long()
        alive = exists & (ended_before == 0)
        powers = gamma ** ahead.to(torch.float32)
        reward = (self.reward[rows, cols] * powers * alive).sum(dim=1)
        k = alive.sum(dim=1)  # >= 1: step 0 always exists and counts
        last = (start + k - 1) % self.capacity
        discount = (gamma ** k.to(torch.float32)) * (~self.terminated[last, env]).float()
        out: Batch = {
            "action": self.action[start, env],
            "reward": reward,
            "discount": discount,
            "steps": k,
        }
        for key in self.obs:
            out[f"obs.{key}"] = self.obs[key][start, env]
            out[f"next_obs.{key}"] = self.next_obs[key][last, env]
        for key, v in self.extras.items():
            out[key] = v[last, env] if key.startswith("next_") else v[start, env]
        return out
