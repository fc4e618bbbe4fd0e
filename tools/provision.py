"""homeseal-provision: give one device its setup code (PROTOCOL.md §1.2, §5.1).

For one device this tool

- picks an 8-digit setup code (trivial codes rejected) unless one is given,
- picks a random PBKDF2 salt (16-32 bytes) and the iteration count,
- computes the SPAKE2+ verifier (w0, L) from them,
- writes the device's `provisioning.json` into its state directory: the
  verifier and the PBKDF parameters, never the code,
- prints the code (`2023-1187`) and the QR payload (`HS1:<ID>:<code>`),
- writes a printable label, PNG and SVG: the QR code with the code in digits
  beside it and the device id below,
- with `--release-key FILE`, pins the installation's firmware release key: the
  key pair is made at FILE (0600) the first time, its public half goes into
  `provisioning.json` (`release_key`), and its private half, which signs firmware
  bundles (`scripts/build-firmware --sign FILE`), never leaves this machine.

The QR payload names the device, so the tool needs the device's id. It takes it
from the device's own key in `<state-dir>/identity.json` (written by the
firmware's first boot, or by this tool: if the state directory has no key yet,
the tool generates the device's static X25519 key on the host with the same
format, so a board can be provisioned before it first runs), or from
`--device-id` (the id a board printed on its console at first boot, when its
key never leaves it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import segno
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from homeseal_protocol import ids
from homeseal_protocol.pairing import device_verifier

from .firmware_bundle import BundleError, load_release_key

IDENTITY = "identity.json"
PROVISIONING = "provisioning.json"
DEFAULT_ITERATIONS = 100_000
MIN_ITERATIONS = 1_000
MAX_ITERATIONS = 1_000_000
MIN_SALT = 16
MAX_SALT = 32


class ProvisionError(Exception):
    """A problem the user must fix; printed as one line."""


def random_setup_code() -> str:
    """8 uniformly random digits, drawn again while trivial (§1.2)."""
    while True:
        code = f"{secrets.randbelow(10**8):08d}"
        try:
            return str(ids.validate_setup_code(code))
        except ValueError:
            continue


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    # Temp file + rename, as the firmware does: never half a file.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def device_public_key(state_dir: Path, generate: bool) -> tuple[bytes, bool]:
    """(the device's X25519 public key, whether it was generated now)."""
    path = state_dir / IDENTITY
    if path.exists():
        try:
            rec = json.loads(path.read_text())
            pub = bytes.fromhex(rec["public_key"])
        except (ValueError, KeyError, TypeError) as err:
            raise ProvisionError(f"{path}: not a device identity file ({err})") from None
        if len(pub) != 32:
            raise ProvisionError(f"{path}: public_key is not 32 bytes")
        return pub, False
    if not generate:
        raise ProvisionError(f"{path} does not exist and --no-generate-key was given")
    key = X25519PrivateKey.generate()
    priv = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    record = {"version": 1, "private_key": priv.hex(), "public_key": pub.hex()}
    _write_atomic(path, json.dumps(record).encode())
    return pub, True


def provisioning_record(
    code: str, salt: bytes, iterations: int, device_id: bytes
) -> dict[str, Any]:
    """What the device stores: (w0, L) and the PBKDF parameters, not the code. The
    verifier names the device (§5.1), so it is made for this device id only."""
    w0, L = device_verifier(code, salt, iterations, device_id)
    return {
        "version": 1,
        "iterations": iterations,
        "salt": salt.hex(),
        "w0": w0.hex(),
        "L": L.hex(),
    }


# ---------------------------------------------------------------- the label

# 5x7 glyphs for the label's text (the setup code's digits, the device id's base32
# letters), one string of 7 rows of 5 bits per glyph.
_GLYPHS = {
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "a": "00000 00000 01110 00001 01111 10001 01111",
    "b": "10000 10000 10110 11001 10001 10001 11110",
    "c": "00000 00000 01110 10000 10000 10001 01110",
    "d": "00001 00001 01101 10011 10001 10001 01111",
    "e": "00000 00000 01110 10001 11111 10000 01110",
    "f": "00110 01001 01000 11100 01000 01000 01000",
    "g": "00000 01111 10001 10001 01111 00001 01110",
    "h": "10000 10000 10110 11001 10001 10001 10001",
    "i": "00100 00000 01100 00100 00100 00100 01110",
    "j": "00010 00000 00110 00010 00010 10010 01100",
    "k": "10000 10000 10010 10100 11000 10100 10010",
    "l": "01100 00100 00100 00100 00100 00100 01110",
    "m": "00000 00000 11010 10101 10101 10001 10001",
    "n": "00000 00000 10110 11001 10001 10001 10001",
    "o": "00000 00000 01110 10001 10001 10001 01110",
    "p": "00000 00000 11110 10001 11110 10000 10000",
    "q": "00000 00000 01101 10011 01111 00001 00001",
    "r": "00000 00000 10110 11001 10000 10000 10000",
    "s": "00000 00000 01110 10000 01110 00001 11110",
    "t": "01000 01000 11100 01000 01000 01001 00110",
    "u": "00000 00000 10001 10001 10001 10011 01101",
    "v": "00000 00000 10001 10001 10001 01010 00100",
    "w": "00000 00000 10001 10001 10101 10101 01010",
    "x": "00000 00000 10001 01010 00100 01010 10001",
    "y": "00000 00000 10001 10001 01111 00001 01110",
    "z": "00000 00000 11111 00010 00100 01000 11111",
}


def _draw_text(rows: list[bytearray], left: int, top: int, text: str, g: int) -> None:
    """Draw `text` in the 5x7 glyphs, each glyph pixel g by g, from (left, top)."""
    for i, ch in enumerate(text):
        for gy, bits in enumerate(_GLYPHS[ch].split()):
            for gx, bit in enumerate(bits):
                if bit == "1":
                    x0 = left + (i * 6 + gx) * g
                    for dy in range(g):
                        rows[top + gy * g + dy][x0 : x0 + g] = b"\x00" * g


def _png(width: int, height: int, rows: list[bytearray]) -> bytes:
    """An 8-bit greyscale PNG (RFC 2083) from rows of pixel bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def label_png(payload: str, code_text: str, device_id_text: str, scale: int = 8) -> bytes:
    """QR code with the setup code in digits to its right and the device id below:
    everything a user types by hand (PROTOCOL §1.2)."""
    qr = segno.make_qr(payload, error="m")
    matrix = [list(r) for r in qr.matrix_iter(scale=1, border=4)]
    qr_px = len(matrix) * scale
    g = scale // 2 + 2  # glyph pixel size of the code
    small = max(2, scale // 3)  # glyph pixel size of the id
    id_line = f"id {device_id_text}"
    width = max(qr_px + len(code_text) * 6 * g + 4 * scale, len(id_line) * 6 * small + 8 * scale)
    height = qr_px + 7 * small + 3 * scale
    rows = [bytearray(b"\xff" * width) for _ in range(height)]
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    r = rows[y * scale + dy]
                    r[x * scale : (x + 1) * scale] = b"\x00" * scale
    _draw_text(rows, qr_px, (qr_px - 7 * g) // 2, code_text, g)
    _draw_text(rows, 4 * scale, qr_px, id_line, small)
    return _png(width, height, rows)


def label_svg(payload: str, code_text: str, device_id_text: str, scale: int = 8) -> str:
    """QR code, the setup code beside it, the device id below; plain SVG text."""
    qr = segno.make_qr(payload, error="m")
    n = qr.symbol_size(scale=1, border=4)[0]
    size = n * scale
    path = []
    for y, row in enumerate(qr.matrix_iter(scale=1, border=4)):
        for x, dark in enumerate(row):
            if dark:
                path.append(f"M{x * scale},{y * scale}h{scale}v{scale}h-{scale}z")
    width = size + 12 * scale * len(code_text) // 2 + 4 * scale
    height = size + 4 * scale
    font = "font-family='DejaVu Sans Mono,monospace'"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>"
        f"<rect width='100%' height='100%' fill='#fff'/>"
        f"<path fill='#000' d='{''.join(path)}'/>"
        f"<text x='{size}' y='{size // 2 + 3 * scale}' {font} font-size='{6 * scale}'>"
        f"{code_text}</text>"
        f"<text x='{4 * scale}' y='{size + 2 * scale}' {font} font-size='{2 * scale}'>"
        f"HomeSeal {device_id_text}</text>"
        f"</svg>\n"
    )


# ---------------------------------------------------------------- command line


def provision(
    state_dir: Path,
    *,
    device_id: bytes | None = None,
    code: str | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    salt_len: int = 32,
    label: Path | None = None,
    make_label: bool = False,
    force: bool = False,
    generate_key: bool = True,
    release_key: Path | None = None,
) -> dict[str, Any]:
    """Provision one device; returns what was done (code included, for printing)."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ProvisionError(f"--iterations must be {MIN_ITERATIONS:,} to {MAX_ITERATIONS:,}")
    if not MIN_SALT <= salt_len <= MAX_SALT:
        raise ProvisionError(f"--salt-bytes must be {MIN_SALT} to {MAX_SALT}")
    try:
        code = random_setup_code() if code is None else ids.validate_setup_code(code)
    except ValueError as err:
        raise ProvisionError(f"setup code: {err}") from None
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / PROVISIONING
    if target.exists() and not force:
        raise ProvisionError(
            f"{target} exists: the device already has a setup code (use --force to replace it "
            "and print a new label)"
        )
    generated = False
    if device_id is None:
        pub, generated = device_public_key(state_dir, generate_key)
        device_id = ids.endpoint_id(pub)
    record = provisioning_record(code, secrets.token_bytes(salt_len), iterations, device_id)
    made_release_key = False
    if release_key is not None:
        if release_key.resolve().is_relative_to(state_dir.resolve()):
            raise ProvisionError(
                "--release-key must not be in the state directory: that goes onto the device"
            )
        release_pub, made_release_key = release_public_key(release_key)
        record["release_key"] = release_pub.hex()
    _write_atomic(target, json.dumps(record).encode())
    payload = ids.format_setup_payload(device_id, code)
    code_text = ids.format_setup_code(code)
    id_text = ids.format_id(device_id)
    out: dict[str, Any] = {
        "device_id": id_text,
        "setup_code": code_text,
        "qr_payload": payload,
        "provisioning_file": str(target),
        "generated_device_key": generated,
    }
    if release_key is not None:
        out["release_key"] = str(release_key)
        out["generated_release_key"] = made_release_key
    if label is None and make_label:
        label = Path(f"homeseal-label-{ids.compact_id(device_id).lower()}")
    if label is not None:
        label.parent.mkdir(parents=True, exist_ok=True)
        png = label.with_suffix(".png")
        svg = label.with_suffix(".svg")
        png.write_bytes(label_png(payload, code_text, id_text))
        svg.write_text(label_svg(payload, code_text, id_text))
        out["label_png"] = str(png)
        out["label_svg"] = str(svg)
    return out


def release_public_key(path: Path) -> tuple[bytes, bool]:
    """The public half (65-byte SEC1) of the installation's release key at `path`, and
    whether it was made now: the key pair is made once, the first time (PEM, 0600), and
    every device provisioned with it pins its public half. The private half signs
    firmware bundles (scripts/build-firmware --sign) and stays on this machine."""
    made = not path.exists()
    if made:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        _write_atomic(path, pem)
    try:
        key = load_release_key(path)
    except BundleError as err:
        raise ProvisionError(str(err)) from None
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint), made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="homeseal-provision",
        description="Give a HomeSeal device its setup code: writes the device's provisioning "
        "file (the SPAKE2+ verifier, never the code) and a printable label.",
    )
    parser.add_argument("state_dir", type=Path, help="the device's state directory")
    parser.add_argument(
        "--device-id",
        help="the id the device printed at first boot (default: from <state_dir>/identity.json, "
        "generating the device key there if absent)",
    )
    parser.add_argument("--code", help="use this 8-digit setup code instead of a random one")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument("--salt-bytes", type=int, default=32)
    parser.add_argument(
        "--label",
        type=Path,
        help="label path without suffix (default: ./homeseal-label-<device id>); "
        "never put it in the state directory, which goes onto the device",
    )
    parser.add_argument("--no-label", action="store_true", help="do not write label files")
    parser.add_argument("--no-generate-key", action="store_true")
    parser.add_argument("--force", action="store_true", help="replace an existing setup code")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--release-key", type=Path, metavar="FILE",
        help="the installation's firmware release key (made at FILE, 0600, the first time): "
        "the device pins its public half",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        device_id = ids.parse_id(args.device_id) if args.device_id else None
    except ValueError as err:
        print(f"homeseal-provision: --device-id: {err}", file=sys.stderr)
        return 2
    # Never into the state directory: that is copied onto the device, and the
    # label carries the code.
    label = None if args.no_label else args.label
    try:
        out = provision(
            args.state_dir,
            device_id=device_id,
            code=args.code,
            iterations=args.iterations,
            salt_len=args.salt_bytes,
            label=label,
            make_label=not args.no_label,
            force=args.force,
            generate_key=not args.no_generate_key,
            release_key=args.release_key,
        )
    except (ProvisionError, OSError) as err:
        print(f"homeseal-provision: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"device id     {out['device_id']}")
        print(f"setup code    {out['setup_code']}")
        print(f"QR payload    {out['qr_payload']}")
        print(f"wrote         {out['provisioning_file']}")
        if out["generated_device_key"]:
            print("              (generated the device key: identity.json)")
        if "release_key" in out:
            made = (
                " (made now: keep it safe, it signs firmware)"
                if out["generated_release_key"]
                else ""
            )
            print(f"release key   {out['release_key']}{made}")
        for k in ("label_png", "label_svg"):
            if k in out:
                print(f"label         {out[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
