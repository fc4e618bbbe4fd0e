"""Unit checks of firmware modules on the MicroPython unix port (tests/firmware/mpy/units.py):
envelope, websocket accept key, backoff, URLs, message parsing (§7), the result
cache, debouncing, the pairing button, session limits, the session responder's
framing and precomputation (§6), the pairing counter, window and framing (§5.3),
CA files, CLAIM/RELEASE authentication (§4.1).

One pytest test per check. The script runs once per module (MicroPython's
startup is most of a check's cost); the check names are read from the script
with ast, so collecting needs no MicroPython.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import run_micropython

pytestmark = pytest.mark.micropython

UNITS = Path(__file__).parent / "mpy" / "units.py"


def _check_names() -> list[str]:
    """Every check units.py registers: `@check("name")`, or one per row of `cases=`."""
    names = []
    for node in ast.walk(ast.parse(UNITS.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "check"):
                continue
            name = ast.literal_eval(deco.args[0])
            cases = next((k.value for k in deco.keywords if k.arg == "cases"), None)
            if cases is None:
                names.append(name)
            else:
                names += [f"{name} {case[0]}" for case in ast.literal_eval(cases)]
    return names


CHECKS = _check_names()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """name -> "ok" or the failure, from one run of units.py."""
    out = run_micropython(UNITS, str(tmp_path_factory.mktemp("units-state")), heapsize="1m")
    lines = out.strip().splitlines() or [""]
    assert lines[-1] == "done", out
    got: dict[str, str] = {}
    for line in lines[:-1]:
        if line.startswith("ok "):
            got[line[3:]] = "ok"
        else:
            assert line.startswith("FAIL "), f"unexpected output: {line}"
            name, _, why = line[5:].partition(": ")
            got[name] = why
    return got


def test_every_check_ran_once(results: dict[str, str]) -> None:
    assert len(CHECKS) > 70
    assert len(set(CHECKS)) == len(CHECKS)
    assert sorted(results) == sorted(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_unit(results: dict[str, str], name: str) -> None:
    assert results.get(name, "did not run") == "ok", f"{name}: {results.get(name, 'did not run')}"
