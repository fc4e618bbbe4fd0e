"""Relay building blocks against the worked examples (PROTOCOL Appendix A) and edge cases:
envelope, ids, relay authentication, key file, rate limiter, passwords, migrations."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from homeseal_protocol import relay_auth
from homeseal_protocol.envelope import ZERO_ID, FrameType, encode_frame
from homeseal_protocol.errors import RelayAuthError
from homeseal_protocol.ids import endpoint_id, format_id, parse_id
from relay_server import auth
from relay_server.accounts import (
    ServiceError,
    check_password_strength,
    common_passwords,
    hash_password,
    verify_password,
)
from relay_server.config import Argon2Params, RateLimit
from relay_server.passwords import hash_scrypt_legacy, needs_rehash
from relay_server.ratelimit import KeyedLimiter
from relay_server.storage_sqlite import MIGRATIONS, SqliteStorage
from tests.support import ROOT

EXAMPLES = json.loads((ROOT / "docs" / "examples" / "protocol_v1.json").read_text())


def test_example_ids() -> None:
    keys = EXAMPLES["keys"]
    for who in ("device", "controller"):
        pub = bytes.fromhex(keys[f"{who}_static_pub"])
        ident = endpoint_id(pub)
        assert ident.hex() == keys[f"{who}_id"]
        assert format_id(ident) == keys[f"{who}_id_text"]
        assert parse_id(keys[f"{who}_id_text"].upper().replace("-", " ")) == ident


@pytest.mark.parametrize(
    "text", ["", "abc", "xtm7-hvrr-kfwz-cce", "xtm7-hvrr-kfwz-ccew1", "01234567890123456"]
)
def test_parse_id_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="16 base32"):
        parse_id(text)


@pytest.mark.parametrize("who", ["device", "controller"])
def test_example_relay_auth(who: str) -> None:
    example = EXAMPLES["relay_auth"][who]
    key = auth.RelayKey.from_private_bytes(bytes.fromhex(EXAMPLES["keys"]["relay_static_priv"]))
    nonce = bytes.fromhex(EXAMPLES["relay_auth"]["nonce"])
    challenge = encode_frame(FrameType.AUTH_CHALLENGE, ZERO_ID, key.public + nonce)
    assert challenge.hex() == example["auth_challenge_frame"]
    frame = bytes.fromhex(example["auth_response_frame"])
    frame_type, peer, payload = frame[0], frame[1:11], frame[11:]
    assert frame_type == FrameType.AUTH_RESPONSE
    verified = auth.verify_response(key, nonce, example["role"], peer, payload)
    assert verified.public_key.hex() == EXAMPLES["keys"][f"{who}_static_pub"]
    if "claim" in example:
        # §4.1: the relay derives the same k_ctl and accepts the device's first CLAIM.
        assert verified.control_key.hex() == example["k_ctl"]
        claim = bytes.fromhex(example["claim"]["frame"])
        claim_type, claim_peer, claim_payload = claim[0], claim[1:11], claim[11:]
        assert claim_type == FrameType.CLAIM
        assert claim_peer.hex() == EXAMPLES["keys"]["controller_id"]
        seq = relay_auth.verify_control(
            verified.control_key, claim_type, claim_peer, claim_payload, 0
        )
        assert seq == example["claim"]["seq"] == 1
        assert (
            relay_auth.control_mac(verified.control_key, FrameType.CLAIM, claim_peer, 1).hex()
            == (example["claim"]["mac"])
        )
    # The other role, another nonce, a flipped MAC bit: all refused.
    other_role = 3 - example["role"]
    with pytest.raises(RelayAuthError):
        auth.verify_response(key, nonce, other_role, peer, payload)
    with pytest.raises(RelayAuthError):
        auth.verify_response(key, bytes(32), example["role"], peer, payload)
    with pytest.raises(RelayAuthError):
        auth.verify_response(key, nonce, example["role"], peer, payload[:-1] + b"\x00")


def test_key_file_created_private(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = auth.load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert auth.load_or_create_key(path).public == first.public
    path.chmod(0o640)
    with pytest.raises(auth.KeyFileError, match="chmod 600"):
        auth.load_or_create_key(path)
    with pytest.raises(auth.KeyFileError, match="cannot create"):
        auth.load_or_create_key(tmp_path / "missing-dir" / "k")


def test_keyed_limiter() -> None:
    now = [0.0]
    limiter = KeyedLimiter(RateLimit(rate=1.0, burst=2), clock=lambda: now[0], max_entries=3)
    assert limiter.take("a") == 0
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0
    now[0] = 10.0
    limiter.take("c")
    limiter.take("d")  # full buckets are forgotten once the table is full
    assert len(limiter) <= 3
    assert limiter.take("a") == 0


CHEAP = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)


def test_passwords() -> None:
    stored = hash_password("correct horse battery", CHEAP)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterx", stored)
    assert not verify_password("x", "garbage")
    assert not verify_password("x", "bcrypt$1$2$3$aa$bb")
    assert not verify_password("x", "$argon2id$v=19$m=1024,t=1,p=1$bad")
    assert hash_password("same password!", CHEAP) != hash_password("same password!", CHEAP)
    # Any str hashes and verifies, lone surrogates (valid JSON strings) included.
    assert verify_password("\ud800 surrogate", hash_password("\ud800 surrogate", CHEAP))
    assert not needs_rehash(stored, CHEAP)
    assert needs_rehash(stored, Argon2Params())
    # The scheme before Argon2id still verifies, and always asks for a rehash.
    legacy = hash_scrypt_legacy("correct horse battery", bytes(16), 2**10)
    assert legacy.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse battery", legacy)
    assert not verify_password("correct horse batterx", legacy)
    assert needs_rehash(legacy, CHEAP)
    assert len(common_passwords()) > 300
    for weak in ("short", "qwertyuiop", "PASSWORD123", "iloveyou123"):
        with pytest.raises(ServiceError):
            check_password_strength(weak, "someone")
    check_password_strength("a perfectly fine passphrase", "someone")


async def test_migrations_are_versioned(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    storage = SqliteStorage(path)
    await storage.open()
    await storage.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    storage = SqliteStorage(path)
    with pytest.raises(Exception, match="newer than this relay"):
        await storage.open()
