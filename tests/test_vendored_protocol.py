"""The integration's copy of the protocol library is the library, byte for byte.

`homeseal_protocol/` is the one source; `custom_components/homeseal/vendor/
homeseal_protocol/` is what HACS installs (docs/ARCHITECTURE.md). Any edit to
one and not the other fails here: run `python -m tools.vendor_protocol`.
"""

from __future__ import annotations

import ast

from tools import vendor_protocol


def test_vendored_copy_matches_the_library() -> None:
    problems = vendor_protocol.drift()
    assert not problems, "run `python -m tools.vendor_protocol`:\n" + "\n".join(problems)


def test_library_imports_only_itself_relatively() -> None:
    """The copy works under another package name only if the library never names itself
    (or the integration) in an absolute import."""
    for name, data in vendor_protocol.source_files().items():
        tree = ast.parse(data, filename=name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                root = node.module.split(".")[0]
                assert root not in {"homeseal_protocol", "custom_components", "homeassistant"}, (
                    f"{name}: absolute import of {node.module}"
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in {"homeseal_protocol", "homeassistant"}
