"""scripts/build-firmware: the firmware bundle, the one artifact that goes onto a board.

What the bundle holds is firmware/manifest.py (micropython-lib's format), read with
MicroPython's own tools/manifestfile.py from the cached source tree:

    OUT/lib/homeseal/*.mpy   the package, compiled by mpy-cross for --arch (bytecode,
                             and native code for the viper functions)
    OUT/main.py              the entry point, as source (a board runs it at boot)
    OUT/manifest.json        version, arch, the MicroPython release the .mpy files need,
                             each file's size and SHA-256, the total size
    OUT/manifest.sig         with --sign: ECDSA P-256 / SHA-256 over manifest.json's
                             exact bytes, r || s (64 bytes, IEEE P1363), by the
                             installation's release key (homeseal-provision --release-key)

scripts/deploy copies a bundle onto a board by cable; an update over the air is
meant to send the same bundle, so the two never differ.

    python -m tools.firmware_bundle OUT [--arch ARCH] [--hw board|sim] [--sign KEY]
    python -m tools.firmware_bundle --list [--hw board|sim] | --version
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(
    os.environ.get("HOMESEAL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "homeseal"
)
MANIFEST = ROOT / "firmware" / "manifest.py"
BUNDLE_FORMAT = 1
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
# mpy-cross's -march values for the boards (xtensawin: ESP32; armv6m: the RP2040 of a
# Pico W) and for the unix port on this machine (x64), which runs the simulated device.
ARCHES = ("xtensawin", "xtensa", "armv6m", "armv7m", "armv7emsp", "x64", "x86")


class BundleError(Exception):
    """A problem the user must fix; printed as one line."""


@dataclass(frozen=True)
class Source:
    path: Path  # in the checkout
    target: str  # in the board's file system: homeseal/ct.py, main.py


def _mpy_source() -> Path:
    src = Path(os.environ.get("HOMESEAL_MICROPYTHON_SRC") or CACHE / "micropython-src")
    if not (src / "tools" / "manifestfile.py").is_file():
        raise BundleError(f"no MicroPython source tree at {src} (run scripts/setup)")
    return src


def _mpy_cross() -> Path:
    tool = Path(os.environ.get("HOMESEAL_MPY_CROSS") or CACHE / "bin" / "mpy-cross")
    if not os.access(tool, os.X_OK):
        raise BundleError(f"no mpy-cross at {tool} (run scripts/setup)")
    return tool


def read_manifest(hw: str) -> tuple[str, list[Source]]:
    """The firmware's version and files, as firmware/manifest.py lists them for `hw`."""
    src = _mpy_source()
    sys.path.insert(0, str(src / "tools"))
    try:
        import manifestfile  # type: ignore[import-not-found]  # noqa: PLC0415  # MicroPython's tool, from the source tree
    finally:
        sys.path.pop(0)
    m = manifestfile.ManifestFile(
        manifestfile.MODE_COMPILE,
        {"MPY_DIR": str(src), "MPY_LIB_DIR": None, "PORT_DIR": None, "BOARD_DIR": None},
    )
    m.include(str(MANIFEST), hw=hw)
    files = [Source(Path(f.full_path), f.target_path) for f in m.files()]
    return str(m.metadata().version), files


def micropython_release(mpy_cross: Path) -> str:
    """The MicroPython release mpy-cross belongs to ("1.26"): a board needs the same
    .mpy format, which MicroPython changes only with its minor releases."""
    out = subprocess.run(
        [str(mpy_cross), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"MicroPython v(\d+)\.(\d+)", out)
    if found is None:
        raise BundleError(f"cannot read mpy-cross's version from {out!r}")
    return f"{found[1]}.{found[2]}"


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: compact JSON, sorted keys."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def load_release_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise BundleError(f"cannot read the release key {path}: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise BundleError(f"{path} is not a P-256 private key")
    return key


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256, as r || s (what the device's homeseal/ecdsa.py checks)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def build(out: Path, arch: str, hw: str = "board", release_key: Path | None = None) -> Path:
    """Compile the firmware into the bundle directory `out` (replaced); returns the
    manifest's path."""
    if arch not in ARCHES:
        raise BundleError(f"unknown --arch {arch}; one of {', '.join(ARCHES)}")
    key = load_release_key(release_key) if release_key is not None else None
    mpy_cross = _mpy_cross()
    version, sources = read_manifest(hw)
    shutil.rmtree(out, ignore_errors=True)
    (out / "lib").mkdir(parents=True)
    entries: list[dict[str, Any]] = []
    for source in sources:
        if "/" in source.target:  # a package module: compiled
            target = "lib/" + source.target.removesuffix(".py") + ".mpy"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [str(mpy_cross), f"-march={arch}", "-s", source.target, "-o", str(out / target),
                 str(source.path)],
                check=True,
            )  # fmt: skip
        else:  # main.py: run from source at boot
            target = source.target
            shutil.copyfile(source.path, out / target)
        data = (out / target).read_bytes()
        entries.append(
            {"path": target, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": version,
        "arch": arch,
        "hw": hw,
        "micropython": micropython_release(mpy_cross),
        "size": sum(e["size"] for e in entries),
        "files": entries,
    }
    body = manifest_bytes(manifest)
    (out / MANIFEST_FILE).write_bytes(body)
    if key is not None:
        (out / SIGNATURE_FILE).write_bytes(sign(key, body))
    return out / MANIFEST_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-firmware",
        description="Build the HomeSeal firmware bundle (compiled modules, main.py, a "
        "manifest of their SHA-256 hashes, optionally signed with the release key).",
    )
    parser.add_argument("out", type=Path, nargs="?", help="the bundle directory (replaced)")
    parser.add_argument(
        "--arch", default="xtensawin", help="mpy-cross -march (default xtensawin: ESP32)"
    )
    parser.add_argument(
        "--hw", choices=("board", "sim"), default="board",
        help="the hardware layer: a board's pins, or the unix port's simulated ones",
    )  # fmt: skip
    parser.add_argument(
        "--sign", type=Path, metavar="KEY",
        help="sign the manifest with this release key (homeseal-provision --release-key)",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="print SOURCE<TAB>TARGET per file")
    parser.add_argument("--version", action="store_true", help="print the firmware's version")
    args = parser.parse_args(argv)
    try:
        if args.list or args.version:
            version, sources = read_manifest(args.hw)
            if args.version:
                print(version)
            else:
                for s in sources:
                    print(f"{s.path}\t{s.target}")
            return 0
        if args.out is None:
            parser.error("the bundle directory is required")
        path = build(args.out, args.arch, args.hw, args.sign)
    except (BundleError, subprocess.CalledProcessError) as err:
        print(f"build-firmware: {err}", file=sys.stderr)
        return 2
    manifest = json.loads(path.read_bytes())
    signed = "signed" if args.sign else "unsigned"
    print(
        f"build-firmware: HomeSeal firmware {manifest['version']} for {manifest['arch']} "
        f"({len(manifest['files'])} files, {manifest['size']:,} bytes, {signed}) in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
