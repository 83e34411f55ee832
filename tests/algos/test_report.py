"""Evaluation plots draw every outcome, the all-success and all-failure ones included."""

import pytest

from robot_rl.algos.evaluate import EvalResult
from robot_rl.algos.report import plot_eval
from robot_rl.algos.rollout import RolloutStats


@pytest.mark.parametrize("success", [True, False])
def test_plot_eval_takes_a_perfect_or_a_zero_success_rate(tmp_path, success):
    n = 100  # at 100 / 100 the Wilson upper bound lands a rounding error below 1.0
    stats = RolloutStats([success] * n, [1.0] * n, [10] * n)
    paths = plot_eval({"arm_reach": EvalResult(stats)}, tmp_path)
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths)
