"""The provisioning tool (tools/provision.py) and the firmware reading its file."""

from __future__ import annotations

import json
import re
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from homeseal_protocol import ids
from homeseal_protocol.pairing import device_verifier
from tests.support import ROOT, run_micropython
from tools import provision as tool


def test_writes_the_verifier_and_never_the_code(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tool.provision(state, code="2023-1187", iterations=1000, label=tmp_path / "lbl")
    rec = json.loads((state / "provisioning.json").read_text())
    assert set(rec) == {"version", "iterations", "salt", "w0", "L"}
    assert rec["version"] == 1
    assert rec["iterations"] == 1000
    salt = bytes.fromhex(rec["salt"])
    assert len(salt) == 32
    identity = json.loads((state / "identity.json").read_text())
    device_id = ids.endpoint_id(bytes.fromhex(identity["public_key"]))
    # RFC 9383 §3.2 (I2): the PBKDF input binds idProver (empty) and the device id.
    w0, L = device_verifier("20231187", salt, 1000, device_id)
    assert (rec["w0"], rec["L"]) == (w0.hex(), L.hex())
    assert stat.S_IMODE((state / "provisioning.json").stat().st_mode) == 0o600

    # The state directory (what goes onto the device) never holds the code.
    assert sorted(p.name for p in state.iterdir()) == ["identity.json", "provisioning.json"]
    for p in state.iterdir():
        assert "20231187" not in p.read_text()
    assert out["device_id"] == ids.format_id(device_id)
    assert out["setup_code"] == "2023-1187"
    assert out["qr_payload"] == f"HS1:{ids.compact_id(device_id)}:20231187"
    assert out["generated_device_key"] is True

    # The label: a PNG (QR + digits) and an SVG with the code and the id.
    png = Path(out["label_png"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width > height > 200
    at = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[at - 4 : at])
    pixels = zlib.decompress(png[at + 4 : at + 4 + length])
    assert len(pixels) == height * (width + 1)  # a filter byte + one grey byte per pixel
    assert pixels.count(0) > 1000  # dark modules and digits
    svg = Path(out["label_svg"]).read_text()
    assert "2023-1187" in svg
    assert ids.format_id(device_id) in svg


def test_codes_salts_and_refusals(tmp_path: Path) -> None:
    for _ in range(200):
        code = tool.random_setup_code()
        assert re.fullmatch(r"\d{8}", code)
        assert code not in ids.TRIVIAL_CODES
    for trivial in ("11111111", "12345678", "87654321", "1234567"):
        with pytest.raises(tool.ProvisionError, match="setup code"):
            tool.provision(tmp_path / "s", code=trivial)
    with pytest.raises(tool.ProvisionError, match="iterations"):
        tool.provision(tmp_path / "s", iterations=999)
    with pytest.raises(tool.ProvisionError, match="salt"):
        tool.provision(tmp_path / "s", salt_len=15)
    tool.provision(tmp_path / "s", iterations=1000, salt_len=16)
    rec = json.loads((tmp_path / "s/provisioning.json").read_text())
    assert len(bytes.fromhex(rec["salt"])) == 16
    # A second run would change the code on the label: only with --force.
    with pytest.raises(tool.ProvisionError, match="--force"):
        tool.provision(tmp_path / "s", iterations=1000)
    key_before = (tmp_path / "s/identity.json").read_text()
    tool.provision(tmp_path / "s", iterations=1000, force=True)
    assert (tmp_path / "s/identity.json").read_text() == key_before


def test_cli_with_a_device_id_from_first_boot(tmp_path: Path) -> None:
    device_id = ids.parse_id("mfrg-gzdf-mztw-q2lk")
    proc = subprocess.run(
        [sys.executable, "-m", "tools.provision", str(tmp_path / "st"), "--device-id",
         "MFRG-GZDF-MZTW-Q2LK", "--iterations", "1000", "--label", str(tmp_path / "l")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"QR payload    HS1:{ids.compact_id(device_id)}:" in proc.stdout
    assert not (tmp_path / "st/identity.json").exists()  # the device keeps its own key
    assert (tmp_path / "l.png").exists()
    assert (tmp_path / "l.svg").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "tools.provision", str(tmp_path / "st2"), "--code", "00000000"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "too easy to guess" in bad.stderr
    assert not (tmp_path / "st2" / "provisioning.json").exists()


@pytest.mark.micropython
def test_firmware_reads_the_file_the_tool_wrote(tmp_path: Path) -> None:
    tool.provision(tmp_path, code="55512345", iterations=4321, salt_len=20)
    rec = json.loads((tmp_path / "provisioning.json").read_text())
    out = run_micropython(
        "import sys, binascii\n"
        "from homeseal import pairing_window, store\n"
        "p = pairing_window.Provisioning(store.Store(sys.argv[1]).read(store.PROVISIONING))\n"
        "print(p.iterations, binascii.hexlify(p.salt).decode(), binascii.hexlify(p.w0).decode(),"
        " binascii.hexlify(p.L).decode())\n",
        str(tmp_path),
    )
    assert out.split() == ["4321", rec["salt"], rec["w0"], rec["L"]]
    # A record the firmware must refuse (salt too short).
    rec["salt"] = "00" * 8
    (tmp_path / "provisioning.json").write_text(json.dumps(rec))
    out = run_micropython(
        "import sys\nfrom homeseal import pairing_window, store\n"
        "try:\n pairing_window.Provisioning(store.Store(sys.argv[1]).read(store.PROVISIONING))\n"
        "except store.StoreError as e:\n print('refused', e)\n",
        str(tmp_path),
    )
    assert out.strip() == "refused provisioning.json is not a valid provisioning record"
