"""Copy the protocol library into the integration (`python -m tools.vendor_protocol`).

`homeseal_protocol/` at the top of the repository is the one source of the wire
format: the relay, the tools and the tests import it from there. Home Assistant
installs an integration from its own folder alone (HACS copies
`custom_components/homeseal/` and nothing else, offline, with no package index),
so the integration carries a byte-for-byte copy in
`custom_components/homeseal/vendor/homeseal_protocol/`. This tool writes that copy;
`--check` only compares, and tests/test_vendored_protocol.py fails when the two
differ. Never edit the copy: edit `homeseal_protocol/` and run this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "homeseal_protocol"
COPY = ROOT / "custom_components" / "homeseal" / "vendor" / "homeseal_protocol"


def source_files() -> dict[str, bytes]:
    """Relative path → content of every module of the library."""
    return {
        str(p.relative_to(SOURCE)): p.read_bytes()
        for p in sorted(SOURCE.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def copy_files() -> dict[str, bytes]:
    if not COPY.is_dir():
        return {}
    return {
        str(p.relative_to(COPY)): p.read_bytes()
        for p in sorted(COPY.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def drift() -> list[str]:
    """What differs between the library and its copy (empty when they are the same)."""
    want, have = source_files(), copy_files()
    problems = [f"missing from the copy: {name}" for name in sorted(set(want) - set(have))]
    problems += [f"only in the copy: {name}" for name in sorted(set(have) - set(want))]
    problems += [
        f"differs: {name}" for name in sorted(set(want) & set(have)) if want[name] != have[name]
    ]
    return problems


def write() -> list[str]:
    """Make the copy equal to the library; returns what changed."""
    changed = drift()
    want = source_files()
    for name in set(copy_files()) - set(want):
        (COPY / name).unlink()
    for name, data in want.items():
        target = COPY / name
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for directory in sorted(COPY.rglob("*"), reverse=True):
        if directory.is_dir() and directory.name != "__pycache__" and not any(directory.iterdir()):
            directory.rmdir()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    for line in write():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
