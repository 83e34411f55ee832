"""Safety between the policy and the hardware: filters, watchdog, mode machine.

Every component is a filter ``filter(state, action) -> (applied_action, report)`` that fails
closed; :func:`build_chain` composes them from a robot profile and a safety config. The same
chain runs in simulation (training, evaluation) and in the ROS 2 safety node.
"""

from robot_rl.safety.base import Fallback, Report, SafetyFilter, SafetyState
from robot_rl.safety.chain import COMPONENTS, SafetyChain, SafetyConfig, build_chain
from robot_rl.safety.modes import Mode, ModeMachine

__all__ = [
    "COMPONENTS",
    "Fallback",
    "Mode",
    "ModeMachine",
    "Report",
    "SafetyChain",
    "SafetyConfig",
    "SafetyFilter",
    "SafetyState",
    "build_chain",
]
