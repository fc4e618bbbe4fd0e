"""The Python packages a `hass --skip-pip` needs for the integrations a configuration
loads (`python -m tools.ha_requirements INTEGRATION …`).

`hass --skip-pip` installs nothing, so every core integration it sets up must find
its requirements installed; a missing one (e.g. `hassil` for `conversation`, which
the frontend pulls in) leaves the web UI on "Loading data" for ever. This tool walks
the manifests of the installed Home Assistant from the given integrations through
their `dependencies` and `after_dependencies` (and homeseal's) and prints every
pinned requirement, one per line, for `pip install -r`; with what hass always sets up
and what it imports to describe services.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import homeassistant.components
from homeassistant import bootstrap
from homeassistant.helpers import service

COMPONENTS = Path(homeassistant.components.__file__).parent
CUSTOM = Path(__file__).resolve().parent.parent / "custom_components"


def _manifest(domain: str) -> dict[str, object]:
    for base in (COMPONENTS, CUSTOM):
        path = base / domain / "manifest.json"
        if path.is_file():
            data: dict[str, object] = json.loads(path.read_text())
            return data
    raise KeyError(f"no integration {domain!r}")


# What `hass` sets up whatever the configuration says (bootstrap's own lists).
ALWAYS: frozenset[str] = frozenset(
    {
        *bootstrap.CORE_INTEGRATIONS,
        *bootstrap.DEFAULT_INTEGRATIONS,
        *bootstrap.LOGGING_AND_HTTP_DEPS_INTEGRATIONS,
    }
    - {"sentry", "isal"}  # set up only when configured / on request
)


def service_description_components() -> set[str]:
    """The components HA imports to describe services (the frontend's `get_services`):
    helpers/service.py's `_base_components` imports them, whatever is configured, so
    their Python packages must be installed (`conversation` needs `hassil`)."""
    tree = ast.parse(inspect.getsource(service._base_components))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "homeassistant.components"
        for alias in node.names
    }


def loaded(domains: Iterable[str]) -> set[str]:
    """The integrations set up with `domains`: those, what hass always sets up, and all
    they depend on."""
    seen: set[str] = set()
    todo = [*domains, *ALWAYS, *service_description_components()]
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = _manifest(domain)
        for key in ("dependencies", "after_dependencies"):
            todo.extend(str(d) for d in manifest.get(key, []) or [])  # type: ignore[attr-defined]
    return seen


def requirements(domains: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for domain in loaded(domains):
        found.update(str(r) for r in _manifest(domain).get("requirements", []) or [])  # type: ignore[attr-defined]
    return sorted(found, key=str.lower)


def configured_integrations() -> list[str]:
    from testbed.hass import configured_integrations as of_testbed  # noqa: PLC0415

    return [*of_testbed(frontend=True), "homeseal"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "integrations",
        nargs="*",
        help="default: what the testbed's hass (demo, end-to-end and browser tests) loads",
    )
    args = parser.parse_args(argv)
    domains = args.integrations or configured_integrations()
    print("\n".join(requirements(domains)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
