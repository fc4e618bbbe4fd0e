"""Write the integration's English translation from its strings.json
(`python -m tools.ha_translations`; `--check` only compares).

Home Assistant loads `translations/<language>.json` of a custom integration as it is:
the `[%key:common::…%]` references of strings.json are resolved by Home Assistant's
own build for core integrations only. This tool resolves them against the
installed Home Assistant's `strings.json` and writes `translations/en.json`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import homeassistant

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "custom_components" / "homeseal"
STRINGS = COMPONENT / "strings.json"
ENGLISH = COMPONENT / "translations" / "en.json"
_REFERENCE = re.compile(r"\[%key:([a-z0-9_:]+)%\]")


def _lookup(tree: dict[str, Any], path: str) -> str:
    node: Any = tree
    for part in path.split("::"):
        node = node[part]
    if not isinstance(node, str):
        raise KeyError(path)
    return node


def resolve(strings: dict[str, Any], core: dict[str, Any]) -> dict[str, Any]:
    """strings.json with every `[%key:…%]` replaced by the text it names."""

    def text(value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            path = match.group(1)
            source = core if path.startswith("common::") else strings
            return text(_lookup(source, path))

        return _REFERENCE.sub(replace, value)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return text(node) if isinstance(node, str) else node

    return walk(strings)  # type: ignore[no-any-return]


def english() -> str:
    core = json.loads((Path(homeassistant.__file__).parent / "strings.json").read_text())
    strings = json.loads(STRINGS.read_text())
    return json.dumps(resolve(strings, core), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args(argv)
    wanted = english()
    if args.check:
        same = ENGLISH.is_file() and ENGLISH.read_text() == wanted
        if not same:
            print(f"{ENGLISH} is out of date: run python -m tools.ha_translations", file=sys.stderr)
        return 0 if same else 1
    ENGLISH.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
