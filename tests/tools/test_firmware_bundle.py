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

from testbed.firmware import build_firmware, provision
from testbed.process import TestbedError
from tests.support import ROOT, run_micropython

pytestmark = pytest.mark.micropython  # the bundle's modules run on the unix port


def _pinned(state: Path) -> bytes:
    """The release key's public half, as the device's provisioning record pins it."""
    return bytes.fromhex(json.loads((state / "provisioning.json").read_text())["release_key"])


def _verify_on_device(bundle: Path, manifest: bytes, signature: bytes, public: bytes) -> str:
    """homeseal.ecdsa.verify as the bundle's compiled module runs it on the unix port."""
    script = (
        "from homeseal import ecdsa\n"
        f"print(ecdsa.verify({public!r}, {manifest!r}, {signature!r}))\n"
    )
    return run_micropython(script, timeout=120, firmware=bundle / "lib").strip()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A bundle for the unix port signed with a release key homeseal-provision made;
    returns the bundle and the public half the device pinned."""
    tmp = tmp_path_factory.mktemp("bundle")
    key = tmp / "keys" / "release.pem"
    assert provision(tmp / "state", release_key=key).generated_release_key is True
    assert key.is_file()
    build_firmware(tmp / "out", sign=key)
    return tmp / "out", _pinned(tmp / "state")


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
    init = (Path(__file__).parents[2] / "firmware" / "homeseal" / "__init__.py").read_text()
    assert f'__version__ = "{manifest["version"]}"' in init
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
        made = provision(tmp_path / device, release_key=key).generated_release_key
        assert made is (device == "a")
        pins.append(_pinned(tmp_path / device))
    assert pins[0] == pins[1]  # one key per installation, pinned by every device
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in (tmp_path / "a" / "provisioning.json").read_text()
    with pytest.raises(TestbedError, match=r"exit 2.*must not be in the state directory"):
        provision(tmp_path / "c", release_key=tmp_path / "c" / "release.pem")
    assert not (tmp_path / "c" / "release.pem").exists()


def test_bad_release_key_and_arch_are_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pem"
    wrong.write_text("not a key")
    with pytest.raises(TestbedError, match=r"exit 2.*cannot read the release key"):
        build_firmware(tmp_path / "out", sign=wrong)
    with pytest.raises(TestbedError, match=r"exit 2.*unknown --arch z80"):
        build_firmware(tmp_path / "out", arch="z80")


def test_deploy_copies_the_signed_bundle(signed: tuple[Path, bytes], tmp_path: Path) -> None:
    """scripts/deploy --sign builds the same bundle and copies it, manifest included
    (--dry-run: the mpremote commands, no board)."""
    _, pinned = signed
    key = signed[0].parent / "keys" / "release.pem"
    config = tmp_path / "config.json"
    config.write_text("{}")
    proc = subprocess.run(
        [str(ROOT / "scripts" / "deploy"), "--config", str(config), "--sign", str(key),
         "--arch", "armv6m", "--dry-run"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "for armv6m" in proc.stderr
    assert ", signed)" in proc.stderr
    build = ROOT / "build" / "deploy"
    assert f"fs cp {build}/manifest.json :/lib/homeseal/manifest.json" in proc.stdout
    assert f"fs cp -r {build}/lib/homeseal :/lib/" in proc.stdout
    body = (build / "manifest.json").read_bytes()
    assert json.loads(body)["arch"] == "armv6m"
    signature = (build / "manifest.sig").read_bytes()
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pinned)
    key_pub.verify(encode_dss_signature(r, s), body, ec.ECDSA(hashes.SHA256()))
