"""Suite-wide pytest options."""

import robot_rl  # noqa: F401  (picks MuJoCo's GL platform before a test module imports mujoco)


def pytest_addoption(parser):
    parser.addoption(
        "--identity-filters",
        action="store_true",
        help="replace every safety filter under test by the identity (tests/safety: the "
        "property tests must then fail, showing they can catch a filter that does nothing)",
    )


from hypothesis import Phase, settings  # noqa: E402

# tests/safety/test_identity_swap.py only needs to see the properties fail, not the smallest
# failing example: skipping the shrink phase keeps that check at seconds
settings.register_profile("no_shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])
