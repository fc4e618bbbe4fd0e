"""The firmware's layout (firmware/README.md, "Layout"): every module is in
firmware/manifest.py, the version has one home, and each module imports only
modules of the layers below its own.

CPython only: the manifest is read the way scripts/deploy reads it (MicroPython's
tools/manifestfile.py), the imports with ast.
"""

from __future__ import annotations

import ast
import subprocess

import pytest

from tests.support import FIRMWARE, ROOT

PACKAGE = FIRMWARE / "homeseal"

# Lowest first, as in firmware/README.md. A module may import any module of a
# layer above it in this list, and the modules of its own layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("support", ("__init__", "errors", "store", "ids", "memstat", "health")),
    (
        "crypto",
        (
            "ct",
            "kdf",
            "x25519",
            "chachapoly",
            "p256",
            "ecdsa",
            "spake2plus",
            "noise_patterns",
            "noise",
        ),
    ),
    ("hardware", ("hw", "hw_sim")),
    ("websocket", ("ws",)),
    ("envelope", ("envelope",)),
    ("relay link", ("relay",)),
    ("pairing", ("pairing", "pairing_window")),
    ("session", ("session",)),
    ("application messages", ("messages",)),
    ("entities", ("entities", "actuators")),
    ("config", ("config",)),
    ("device", ("bootstate", "device")),
)
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def _manifest(hw: str) -> list[str]:
    """The targets scripts/deploy takes from firmware/manifest.py."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "deploy"), "--list", "--hw", hw],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t")[1] for line in proc.stdout.splitlines()]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def _imports(module: str) -> set[str]:
    """The homeseal modules `module` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name[9:] for a in node.names if a.name.startswith("homeseal.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "homeseal":
            # `from homeseal import ws, __version__`: modules, or names of __init__.
            for a in node.names:
                found.add(a.name if (PACKAGE / f"{a.name}.py").is_file() else "__init__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("homeseal."):
            found.add(node.module[9:])  # type: ignore[index]
    found.discard(module)
    return found


@pytest.mark.parametrize(("hw", "twin"), [("board", "hw_sim"), ("sim", "hw")])
def test_the_manifest_lists_every_module(hw: str, twin: str) -> None:
    listed = _manifest(hw)
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(
        [f"homeseal/{m}.py" for m in _modules() if m != twin] + ["main.py"]
    )


def test_every_module_has_a_layer() -> None:
    assert sorted(RANK) == _modules()


@pytest.mark.parametrize("module", sorted(RANK))
def test_imports_only_from_the_layers_below(module: str) -> None:
    upward = {m: LAYERS[RANK[m]][0] for m in _imports(module) if RANK[m] > RANK[module]}
    assert not upward, f"{module} ({LAYERS[RANK[module]][0]}) imports higher layers: {upward}"


def test_one_home_for_the_version() -> None:
    """homeseal/__init__.py holds __version__, the manifest's metadata reads it, and
    nothing else in the firmware writes a version."""
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    versions = [
        node.value.value
        for node in init.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") == "__version__"
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    assert len(versions) == 1
    for path in [*PACKAGE.glob("*.py"), FIRMWARE / "main.py"]:
        if path.name != "__init__.py":
            text = path.read_text()
            assert "__version__ =" not in text, path
            assert "FW_VERSION" not in text, path
    proc = subprocess.run(
        [str(ROOT / "scripts" / "deploy"), "--version"], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, f"{versions[0]}\n"), proc.stderr
