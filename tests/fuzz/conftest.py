"""Options for the fuzz suite.

CI runs ~200 examples per parser (the whole suite well under a minute). A longer run:
`HOMESEAL_FUZZ_EXAMPLES=20000 pytest tests/fuzz`, or `pytest tests/fuzz --fuzz-long`
(the option exists when pytest is pointed at tests/fuzz, where this conftest is an
initial one; the variable works from anywhere). The settings live in profile.py and are
applied per test, so other suites' hypothesis defaults are left alone.
"""

from __future__ import annotations

import os

import pytest

from .profile import LONG_EXAMPLES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help=f"run {LONG_EXAMPLES} hypothesis examples per fuzz target",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Before collection: profile.py reads the variable when the test modules import it.
    if config.getoption("--fuzz-long", default=False):
        os.environ["HOMESEAL_FUZZ_EXAMPLES"] = str(LONG_EXAMPLES)
