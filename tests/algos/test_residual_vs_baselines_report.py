"""What ``bench/residual_vs_baselines.py`` prints from its curves: env steps to a threshold and
the baseline/residual ratio, in each case the script meets."""

import json
import sys

import pytest

from bench.residual_vs_baselines import learner_config, main, pct, ratio, report, steps_to


def test_steps_to_is_the_first_evaluation_at_or_above_the_threshold():
    curve = [(0, 0.5), (25_000, 0.9), (50_000, 0.85), (75_000, 0.96)]
    assert steps_to(curve, 0.9) == 25_000
    assert steps_to(curve, 0.95) == 75_000
    assert steps_to(curve, 0.97) is None
    assert steps_to(None, 0.9) is None
    assert steps_to([], 0.9, held=True) is None


def test_held_steps_are_where_the_curve_stays_at_the_threshold_to_the_end():
    dip = [(0, 0.96), (25_000, 0.8), (50_000, 0.91), (75_000, 0.93)]  # a base above, then a dip
    assert steps_to(dip, 0.9) == 0
    assert steps_to(dip, 0.9, held=True) == 50_000
    assert steps_to(dip, 0.95, held=True) is None  # ended below
    late = [(0, 0.5), (25_000, 0.92), (50_000, 0.88), (75_000, 0.9)]
    assert steps_to(late, 0.9, held=True) == 75_000
    assert steps_to([(0, 0.95), (25_000, 0.9)], 0.9, held=True) == 0  # never below


def test_ratio_uses_the_fastest_baseline_that_got_there():
    assert ratio({"residual": 20_000, "no_base": 300_000, "sb3_sac": 100_000}, 500_000) == "5.00"
    assert ratio({"residual": 20_000, "no_base": None, "sb3_sac": 100_000}, 500_000) == "5.00"


def test_ratio_is_a_lower_bound_rounded_down_when_no_baseline_got_there():
    text = ratio({"residual": 25_000, "no_base": None, "sb3_sac": None}, 125_000)
    assert text.startswith(">5.00 (no baseline got there by its last evaluation, 125000")
    assert ratio({"residual": 50_016, "sb3_sac": None}, 125_000).startswith(">2.49")


def test_ratio_has_no_value_when_the_base_starts_there_or_the_residual_never_gets_there():
    assert ratio({"residual": 0, "no_base": None}, 125_000).startswith("n/a (the base alone")
    assert ratio({"residual": None, "no_base": 50_000}, 125_000).startswith("n/a (residual did")
    assert ratio({"residual": 50_000}, 125_000) == "n/a (no baseline ran)"
    assert ratio({"no_base": 50_000}, 125_000) == "n/a (residual not run)"


def test_ratio_is_unbounded_when_the_residual_holds_a_threshold_its_base_starts_at():
    text = ratio({"residual": 0, "no_base": None, "sb3_sac": None}, 128_000, held=True)
    assert text == (
        "unbounded (the base starts there and the residual never fell below it; no baseline got "
        "there by its last evaluation, 128000 env steps)"
    )
    text = ratio({"residual": 0, "no_base": 96_000, "sb3_sac": None}, 128_000, held=True)
    assert text.endswith("; the fastest baseline took 96000 env steps)")
    # held from later on: the usual ratio
    assert ratio({"residual": 25_600, "no_base": None}, 128_000, held=True).startswith(">5.00")


def test_report_prints_both_step_counts_and_ratios():
    curves = {
        "residual": [(0, 0.96), (25_000, 0.8), (50_000, 0.91), (75_000, 0.93)],
        "sb3_sac": [(0, 0.0), (25_000, 0.2), (50_000, 0.5), (75_000, 0.7)],
    }
    text = report(curves, {"residual": 120.0}, [0.9, 0.925])
    assert "| method | success at 0 | final success | env steps to 90% (first / held) " in text
    assert "| env steps to 92.5% (first / held) | wall (s) |" in text
    assert "| residual | 96.0% | 93.0% | 0 / 50000 | 0 / 75000 | 120 |" in text
    assert "| sb3_sac | 0.0% | 70.0% | - / - | - / - | - |" in text
    assert "@90% (first reached): n/a (the base alone" in text
    assert (
        "@90% (held to the end): >1.50 (no baseline got there by its last evaluation, 75000" in text
    )
    assert pct(0.925) == "92.5%" and pct(0.9) == "90%"


def test_from_curves_reprints_a_saved_run_and_refuses_other_files(tmp_path, monkeypatch, capsys):
    saved = tmp_path / "curves.json"
    curves = {"residual": [[0, 0.5], [10, 0.95]], "no_base": [[0, 0.0], [10, 0.1]]}
    saved.write_text(json.dumps({"budget": 10, "curves": curves, "seconds": {"residual": 3.0}}))
    monkeypatch.setattr(sys, "argv", ["x", "--from-curves", str(saved), "--threshold", "0.9"])
    main()
    out = capsys.readouterr().out
    assert "| residual | 50.0% | 95.0% | 10 / 10 | 3 |" in out
    assert "@90% (held to the end): >1.00" in out
    bad_files = [{"curves": {"residual": []}}, {"curves": {}}, {"curves": [1]}, {"x": 1}]
    bad_files.append({"curves": curves, "seconds": [1.0]})
    for bad in bad_files:
        saved.write_text(json.dumps(bad))
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("x: error:") and "not a curves.json of this script" in err


def test_no_base_keeps_the_penalty_constant_and_the_residual_takes_the_anneal():
    algo = {"residual_penalty": 0.1, "residual_penalty_start": 1.0,
            "residual_penalty_anneal_updates": 100, "action_scale_per_dim": [0.3, 0.0]}  # fmt: skip
    ours, theirs = learner_config("residual", algo, 1000), learner_config("no_base", algo, 1000)
    assert (ours.residual_penalty_start, ours.scales, ours.env_steps) == (1.0, [0.3, 0.0], 1000)
    assert (theirs.residual_penalty_start, theirs.scales) == (None, 1.0)
    assert theirs.penalty_at(0) == theirs.penalty_at(10_000) == 0.1


def test_the_methods_say_which_arguments_they_need(monkeypatch, capsys):
    for argv, says in (
        (["--methods", "residual,sb3_sac"], "--base and --demos are required to run residual"),
        (["--methods", "sb3_sac"], "sb3_sac alone needs --task"),
    ):
        monkeypatch.setattr(sys, "argv", ["residual_vs_baselines.py", *argv])
        with pytest.raises(SystemExit):
            main()
        assert says in capsys.readouterr().err
