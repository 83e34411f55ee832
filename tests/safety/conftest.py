"""``pytest tests/safety --identity-filters`` swaps every filter under test for the identity, to
show that the property tests catch a filter that does nothing (they must fail then; the test
``test_identity_filters_fail_the_properties`` runs that check itself)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.safety.base import make_report


class Identity:
    """A filter that lets everything through: what a disabled or broken filter does."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def filter(self, state, action):
        a = np.asarray(action, float)
        return a.copy(), make_report(self.name, a, a, np.zeros(len(a), bool), [])

    def commit(self, state, applied):
        return None

    def reset(self):
        return None


@pytest.fixture
def under_test(request):
    """``under_test(filter)``: the filter itself, or the identity with ``--identity-filters``."""
    identity = request.config.getoption("--identity-filters")
    return (lambda f: Identity(f)) if identity else (lambda f: f)
