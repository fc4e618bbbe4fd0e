"""Hypothesis settings of the fuzz suite (see conftest.py for the long run)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200
LONG_EXAMPLES = 20000


def examples(fraction: float = 1.0) -> int:
    """Examples for one target: a fraction of the run's count (costly targets), at least 10."""
    base = int(os.environ.get("HOMESEAL_FUZZ_EXAMPLES") or CI_EXAMPLES)
    return max(10, int(base * fraction))


def fuzz(fraction: float = 1.0, **extra: Any) -> settings:
    # No deadline: the machine is shared and a slow example is not a failure; the
    # targets that could hang carry their own timeouts.
    return settings(
        max_examples=examples(fraction),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )
