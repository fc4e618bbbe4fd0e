"""The firmware bundle (scripts/build-firmware, tools/firmware_bundle.py) and the
installation's release key (homeseal-provision --release-key): what is built is what
the manifest lists, the compiled modules run on the real unix port, and the device's
own ECDSA verifier (homeseal/ecdsa.py, from the bundle) accepts the signed manifest
and refuses it changed by one byte."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support import ROOT, micropython_path

pytestmark = pytest.mark.micropython  # the bundle's modules run on the unix port

BUILD = ROOT / "scripts" / "build-firmware"
PROVISION = [str(ROOT / ".venv" / "bin" / "python"), "-m", "tools.provision"]


def _run(cmd: list[str | Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)


def _verify_on_device(bundle: Path, manifest: bytes, signature: bytes, public: bytes) -> str:
    """homeseal.ecdsa.verify as the bundle's compiled module runs it on the unix port."""
    script = (
        "from homeseal import ecdsa\n"
        f"print(ecdsa.verify({public!r}, {manifest!r}, {signature!r}))\n"
    )
    proc = subprocess.run(
        [str(micropython_path()), "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
        env={"MICROPYPATH": f".frozen:{bundle / 'lib'}"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A bundle for the unix port signed with a release key homeseal-provision made;
    returns the bundle and the public half the device pinned."""
    tmp = tmp_path_factory.mktemp("bundle")
    key = tmp / "keys" / "release.pem"
    proc = _run([*PROVISION, tmp / "state", "--no-label", "--iterations", "1000",
                 "--release-key", key, "--json"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["generated_release_key"] is True
    pinned = bytes.fromhex(
        json.loads((tmp / "state" / "provisioning.json").read_text())["release_key"]
    )
    proc = _run([BUILD, tmp / "out", "--arch", "x64", "--hw", "sim", "--sign", key])
    assert proc.returncode == 0, proc.stderr
    assert "signed" in proc.stderr
    return tmp / "out", pinned


def test_manifest_lists_every_file_with_its_hash(signed: tuple[Path, bytes]) -> None:
    bundle, _ = signed
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    listed = {e["path"]: e for e in manifest["files"]}
    on_disk = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {
        "manifest.json",
        "manifest.sig",
    }
    assert set(listed) == on_disk
    for path, entry in listed.items():
        data = (bundle / path).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["size"] == sum(e["size"] for e in listed.values())
    assert (manifest["arch"], manifest["hw"], manifest["micropython"]) == ("x64", "sim", "1.26")
    version = _run([BUILD, "--version"]).stdout.strip()
    assert manifest["version"] == version
    assert "lib/homeseal/ecdsa.mpy" in listed
    assert "lib/homeseal/hw_sim.mpy" in listed
    assert "main.py" in listed


def test_the_device_verifies_the_signed_manifest(signed: tuple[Path, bytes]) -> None:
    bundle, pinned = signed
    body = (bundle / "manifest.json").read_bytes()
    signature = (bundle / "manifest.sig").read_bytes()
    assert len(signature) == 64
    # OpenSSL agrees (the signature is a standard one, r || s).
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pinned)
    key.verify(encode_dss_signature(r, s), body, ec.ECDSA(hashes.SHA256()))
    assert _verify_on_device(bundle, body, signature, pinned) == "True"
    tampered = body.replace(b'"size":', b'"size": ', 1)
    assert _verify_on_device(bundle, tampered, signature, pinned) == "False"
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pub = other.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert _verify_on_device(bundle, body, signature, other_pub) == "False"


def test_release_key_is_private_made_once_and_kept_off_the_device(tmp_path: Path) -> None:
    key = tmp_path / "release.pem"
    pins = []
    for device in ("a", "b"):
        proc = _run([*PROVISION, tmp_path / device, "--no-label", "--iterations", "1000",
                     "--release-key", key])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        record = json.loads((tmp_path / device / "provisioning.json").read_text())
        pins.append(record["release_key"])
    assert pins[0] == pins[1]  # one key per installation, pinned by every device
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in (tmp_path / "a" / "provisioning.json").read_text()
    proc = _run([*PROVISION, tmp_path / "c", "--no-label", "--iterations", "1000",
                 "--release-key", tmp_path / "c" / "release.pem"])  # fmt: skip
    assert proc.returncode == 2
    assert "must not be in the state directory" in proc.stderr
    assert not (tmp_path / "c" / "release.pem").exists()


def test_bad_release_key_and_arch_are_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pem"
    wrong.write_text("not a key")
    proc = _run([BUILD, tmp_path / "out", "--arch", "x64", "--sign", wrong])
    assert proc.returncode == 2
    assert "cannot read the release key" in proc.stderr
    proc = _run([BUILD, tmp_path / "out", "--arch", "z80"])
    assert proc.returncode == 2
    assert "unknown --arch z80" in proc.stderr
