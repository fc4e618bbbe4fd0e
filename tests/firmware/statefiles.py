"""The firmware's state records as the tests read and write them (firmware/README.md
"State files", firmware/homeseal/store.py): two slots NAME and NAME.b, each the record's
JSON object with `seq` and, last, `sum` (the first 16 hex digits of SHA-256 of the text
before `, "sum": "`), the newest valid one wins; a plain object (no seq/sum) is a valid
slot with seq 0, as the provisioning tool writes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUM = ', "sum": "'
SUFFIXES = ("", ".b", ".tmp")


def parse_slot(text: str) -> tuple[int, dict[str, Any]] | None:
    """(seq, record) of one slot's text, or None when it is no valid slot."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    i = text.rfind(SUM)
    if i < 0:
        return None if "seq" in obj else (0, obj)
    seq, digest = obj.pop("seq", None), obj.pop("sum", None)
    want = hashlib.sha256((text[:i] + "}").encode()).hexdigest()[:16]
    if not isinstance(seq, int) or digest != text[i + 10 : -2] or digest != want:
        return None
    return seq, obj


def read_record(state: Path, name: str) -> dict[str, Any] | None:
    """The record the device would read (None when no slot is valid)."""
    best: tuple[int, dict[str, Any]] | None = None
    for suffix in SUFFIXES:
        path = state / (name + suffix)
        if path.exists():
            rec = parse_slot(path.read_text())
            if rec is not None and (best is None or rec[0] >= best[0]):
                best = rec
    return None if best is None else best[1]


def write_plain(state: Path, name: str, record: dict[str, Any]) -> None:
    """Make `record` the device's record: one plain file (seq 0), the other slots gone."""
    for suffix in SUFFIXES:
        (state / (name + suffix)).unlink(missing_ok=True)
    (state / name).write_text(json.dumps(record))


def slot_files(state: Path, name: str) -> list[Path]:
    return [state / (name + s) for s in SUFFIXES if (state / (name + s)).exists()]
