"""The integration's metadata, checked with the rules hassfest and HACS apply, using
Home Assistant's own validators from the installed package: manifest.json,
strings.json and translations/, icons.json, brand images, hacs.json, and
quality_scale.yaml against what the repository actually contains."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from awesomeversion import AwesomeVersion
from homeassistant.helpers import config_validation as cv
from homeassistant.loader import Manifest
from PIL import Image

from custom_components.homeseal.compat import vol
from tools import ha_translations

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "homeseal"
ROOT = COMPONENT.parents[1]
STRINGS = json.loads((COMPONENT / "strings.json").read_text())

# hassfest's quality-scale rules (script/hassfest/quality_scale.py), by tier.
RULES = {
    "bronze": [
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions",
        "docs-conditions", "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ],
    "gold": [
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}  # fmt: skip
# Rules whose documentation admits no exemption.
NO_EXEMPTION = {"brands", "entity-category", "entity-disabled-by-default", "icon-translations"}
# Each documentation rule marked done is a section of the integration's README.
DOCS_SECTIONS = {
    "docs-high-level-description": "What it does",
    "docs-installation-instructions": "Installation",
    "docs-removal-instructions": "Removal",
    "docs-installation-parameters": "Configuration parameters",
    "docs-supported-devices": "Supported devices",
    "docs-supported-functions": "Supported functions",
    "docs-data-update": "How data is updated",
    "docs-examples": "Examples",
    "docs-use-cases": "Use cases",
    "docs-known-limitations": "Known limitations",
    "docs-troubleshooting": "Troubleshooting",
}

MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("domain"): "homeseal",
        vol.Required("name"): cv.string,
        vol.Required("codeowners"): [vol.Match(r"^@[\w-]+(/[\w-]+)?$")],
        vol.Required("config_flow"): True,
        vol.Optional("dependencies"): [cv.string],
        vol.Required("documentation"): vol.Url(),
        vol.Required("integration_type"): vol.In(["device", "hub", "service"]),
        vol.Required("iot_class"): vol.In(
            ["assumed_state", "cloud_polling", "cloud_push", "local_polling", "local_push"]
        ),
        vol.Required("issue_tracker"): vol.Url(),
        vol.Optional("loggers"): [cv.string],
        vol.Optional("quality_scale"): vol.In(["bronze", "silver", "gold", "platinum"]),
        vol.Required("requirements"): [cv.string],
        vol.Required("version"): cv.string,
    }
)


def _leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, f"{path}.{key}")]
    return [(path, node)]


def test_manifest_follows_hassfest() -> None:
    text = (COMPONENT / "manifest.json").read_text()
    manifest = json.loads(text)
    MANIFEST_SCHEMA(manifest)
    # hassfest: domain and name first, then the keys in alphabetical order.
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert AwesomeVersion(manifest["version"]).valid
    assert manifest["requirements"] == []  # the protocol library is vendored (README)
    typed: Manifest = manifest  # HA's own description of a manifest
    assert typed["domain"] == COMPONENT.name


def test_strings_have_no_html_and_valid_keys() -> None:
    for path, value in _leaves(STRINGS):
        assert isinstance(value, str), path
        cv.string_with_no_html(value)  # hassfest rejects HTML-like text such as "<id>"
        assert value == value.strip(), path
        for key in path.strip(".").split("."):
            assert re.fullmatch(r"[a-z0-9_-]+", key), f"{path}: key {key!r}"


def test_english_translation_is_strings_resolved() -> None:
    assert ha_translations.main(["--check"]) == 0


def _flow_steps(cls_name: str) -> set[str]:
    tree = ast.parse((COMPONENT / "config_flow.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    return {
        n.name.removeprefix("async_step_")
        for n in cls.body
        if isinstance(n, ast.AsyncFunctionDef) and n.name.startswith("async_step_")
    }


def test_every_shown_step_has_strings() -> None:
    # Steps that never show a form or menu of their own need no strings.
    silent = {"reauth", "finish"}
    assert _flow_steps("HomeSealConfigFlow") - silent == set(STRINGS["config"]["step"])
    assert _flow_steps("DeviceSubentryFlow") - silent == set(
        STRINGS["config_subentries"]["device"]["step"]
    )


def test_every_error_key_the_code_sets_is_translated() -> None:
    source = (COMPONENT / "config_flow.py").read_text()
    keys = set(re.findall(r'errors\[[^\]]+\] = "([a-z_]+)"', source))
    keys |= set(re.findall(r'return "([a-z_]+)"', source))
    from custom_components.homeseal.config_flow import _PAIRING_FAILED  # noqa: PLC0415
    from custom_components.homeseal.vendor.homeseal_protocol import PairingFailure  # noqa: PLC0415

    keys_pairing = {f.value for f in PairingFailure} - {f.value for f in _PAIRING_FAILED}
    config_errors = set(STRINGS["config"]["error"])
    device_errors = set(STRINGS["config_subentries"]["device"]["error"])
    assert keys_pairing <= device_errors
    assert keys <= config_errors | device_errors
    assert re.findall(r'reason="([a-z_]+)"', source)
    for reason in re.findall(r'reason="([a-z_]+)"', source):
        assert (
            reason in STRINGS["config"]["abort"] | STRINGS["config_subentries"]["device"]["abort"]
        )


def test_icons_are_mdi_and_match_translation_keys() -> None:
    icons = json.loads((COMPONENT / "icons.json").read_text())
    for path, value in _leaves(icons):
        assert re.fullmatch(r"mdi:[a-z0-9-]+", value), path
    platforms = {p.stem for p in COMPONENT.glob("*.py")}
    assert set(icons["entity"]) <= platforms


@pytest.mark.parametrize(("name", "size"), [("icon.png", (256, 256)), ("icon@2x.png", (512, 512))])
def test_brand_icons(name: str, size: tuple[int, int]) -> None:
    with Image.open(COMPONENT / "brand" / name) as image:
        assert image.size == size
        assert image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0  # transparent background


def test_brand_logo() -> None:
    with Image.open(COMPONENT / "brand" / "logo.png") as image:
        width, height = image.size
        assert 128 <= height <= 256
        assert width >= height
        assert image.mode == "RGBA"


def test_hacs_repository() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= {"name", "content_in_root", "homeassistant", "render_readme", "zip_release"}
    assert hacs["name"] == "HomeSeal"
    assert not hacs.get("content_in_root")
    assert AwesomeVersion(hacs["homeassistant"]).valid
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert (ROOT / "README.md").is_file()
    assert (ROOT / "CHANGELOG.md").is_file()


def test_quality_scale_is_honest() -> None:
    data = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())
    rules: dict[str, Any] = data["rules"]
    every = {rule for tier in RULES.values() for rule in tier}
    assert set(rules) == every
    status = {}
    for rule, value in rules.items():
        status[rule] = value["status"] if isinstance(value, dict) else value
        assert status[rule] in {"done", "todo", "exempt"}, rule
        if status[rule] != "done":
            assert isinstance(value, dict), f"{rule} needs a comment"
            assert value.get("comment"), f"{rule} needs a comment"
    assert not {r for r in NO_EXEMPTION if status[r] == "exempt"}
    readme = (COMPONENT / "README.md").read_text()
    headings = set(re.findall(r"^## (.+)$", readme, flags=re.MULTILINE))
    for rule, heading in DOCS_SECTIONS.items():
        if status[rule] == "done":
            assert heading in headings, f"{rule} is done but README has no '## {heading}'"
    if status["brands"] == "done":
        assert (COMPONENT / "brand" / "icon.png").is_file()
    if status["icon-translations"] == "done":
        assert (COMPONENT / "icons.json").is_file()
    # The tier the manifest declares is met, rule by rule, with every tier below it.
    manifest = json.loads((COMPONENT / "manifest.json").read_text())
    met = {rule for rule, s in status.items() if s in {"done", "exempt"}}
    tiers = list(RULES)
    if "quality_scale" in manifest:
        for tier in tiers[: tiers.index(manifest["quality_scale"]) + 1]:
            assert set(RULES[tier]) <= met, tier
    else:
        # No tier declared: Bronze must really be out of reach.
        assert not set(RULES["bronze"]) <= met
