"""Hypothesis settings of the fuzz suite (see conftest.py for the long run)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
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


async def run_off_loop(body: Callable[[], None], name: str) -> None:
    """Run a hypothesis test `body` (which blocks between examples) in a thread while
    this event loop keeps serving the relay the examples talk to; re-raise its error."""
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            body()
        except BaseException as err:  # handed over to the loop's side
            errors.append(err)

    thread = threading.Thread(target=worker, name=name)
    thread.start()
    while thread.is_alive():  # noqa: ASYNC110 - a thread, not a task, is awaited
        await asyncio.sleep(0.02)
    thread.join()
    if errors:
        raise errors[0]
