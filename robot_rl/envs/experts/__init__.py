"""Scripted experts that make demonstrations, one per task, registered by task name."""

from robot_rl.envs.experts import arm as _arm  # noqa: F401  (registers the arm experts)
from robot_rl.envs.experts import car as _car  # noqa: F401  (registers the racing expert)
from robot_rl.envs.experts.base import EXPERTS, Expert, make_expert

__all__ = ["EXPERTS", "Expert", "make_expert"]
