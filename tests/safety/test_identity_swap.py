"""The property tests catch a filter that does nothing: rerun them with every filter replaced by
the identity (``pytest tests/safety --identity-filters``) and each guarantee must fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# one guarantee per filter; each must fail when the filter is the identity
GUARANTEES = [
    "test_filter_properties.py::test_joint_limits_output_finite_and_inside",
    "test_filter_properties.py::test_joint_limits_push_a_bent_joint_back",
    "test_filter_properties.py::test_rate_limiter_bounds_the_step",
    "test_filter_properties.py::test_rate_limiter_bounds_the_speed_when_commands_come_faster",
    "test_filter_properties.py::test_guard_fails_closed_on_untrusted_readings",
    "test_filter_properties.py::test_workspace_box_keeps_the_tool_inside",
    "test_filter_properties.py::test_energy_tank_bounds_the_injected_energy",
    "test_filter_properties.py::test_watchdog_replaces_old_commands",
    "test_filter_properties.py::test_fall_detector_damps_when_tilted",
    "test_filter_properties.py::test_emergency_brake_never_drives_into_an_obstacle",
    "test_filter_properties.py::test_geofence_never_drives_toward_a_fence_within_the_stopping_distance",
    "test_car_chain.py::test_car_chain_brakes_below_the_time_to_collision",
    "test_cbf.py::test_cbf_keeps_the_safe_set_invariant_on_an_integrator",
    "test_filter_properties.py::test_arm_chain_keeps_rate_box_and_keep_out",
]


@pytest.mark.slow
def test_identity_filters_fail_the_properties():
    ids = [str(HERE / g) for g in GUARANTEES]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--identity-filters",
            "--hypothesis-profile=no_shrink",
            "-o",
            "addopts=",
            "-rf",
            *ids,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = {
        line.split()[1].split("::")[-1]
        for line in run.stdout.splitlines()
        if line.startswith("FAILED")
    }
    missing = [g for g in GUARANTEES if g.split("::")[-1] not in failed]
    assert not missing, (
        f"these guarantees hold even with identity filters: {missing}\n{run.stdout[-2000:]}"
    )
