"""The Noise Protocol Framework, revision 34, for `Noise_*_25519_ChaChaPoly_SHA256`.

Names follow the specification (§5): CipherState, SymmetricState, HandshakeState,
MixKey, MixHash, MixKeyAndHash, EncryptAndHash, DecryptAndHash, Split. Every
handshake pattern of §7 (fundamental, one-way, deferred) and the `pskN` modifiers
of §9 are supported. HomeSeal itself only uses `Noise_KK_25519_ChaChaPoly_SHA256`
(PROTOCOL §6); the other patterns exist so the whole cacophony vector set can
check this code.

Primitives come from `cryptography`: X25519, ChaCha20-Poly1305 (IETF, 96-bit
nonce = 32 zero bits ‖ 64-bit little-endian counter) and HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DecryptError, NoiseError
from ..keys import private_bytes, private_key, public_bytes

DHLEN: Final = 32
HASHLEN: Final = 32
KEYLEN: Final = 32
TAGLEN: Final = 16
MAX_MESSAGE_LEN: Final = 65535
MAX_NONCE: Final = 2**64 - 1  # reserved by §5.1: using it is an error
SUFFIX: Final = "_25519_ChaChaPoly_SHA256"


# ---------------------------------------------------------------- primitives


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


def hkdf(chaining_key: bytes, input_key_material: bytes, num_outputs: int) -> tuple[bytes, ...]:
    """HKDF as defined by Noise §4.3 (two or three 32-byte outputs)."""
    temp_key = _hmac(chaining_key, input_key_material)
    output1 = _hmac(temp_key, b"\x01")
    output2 = _hmac(temp_key, output1 + b"\x02")
    if num_outputs == 2:
        return output1, output2
    output3 = _hmac(temp_key, output2 + b"\x03")
    return output1, output2, output3


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair; `private` is the raw 32-byte scalar."""

    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: X25519PrivateKey | bytes) -> KeyPair:
        key = private_key(private)
        return cls(private_bytes(key), public_bytes(key))

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(X25519PrivateKey.generate())


def dh(key_pair: KeyPair, public_key: bytes) -> bytes:
    """X25519; refuses an all-zero result (a low-order peer key) rather than use it."""
    try:
        return X25519PrivateKey.from_private_bytes(key_pair.private).exchange(
            X25519PublicKey.from_public_bytes(public_key)
        )
    except ValueError as err:
        raise NoiseError("DH with a low-order public key") from err


# ---------------------------------------------------------------- §5.1


class CipherState:
    """§5.1: a key k (or none) and a 64-bit counter nonce n."""

    __slots__ = ("_aead", "k", "n")

    def __init__(self) -> None:
        self.k: bytes | None = None
        self.n = 0
        self._aead: ChaCha20Poly1305 | None = None

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key)."""
        self.k = key
        self.n = 0
        self._aead = ChaCha20Poly1305(key) if key is not None else None

    def has_key(self) -> bool:
        """HasKey()."""
        return self.k is not None

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce)."""
        self.n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext): the plaintext itself when there is no key."""
        if self._aead is None:
            return bytes(plaintext)
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted")
        ciphertext = self._aead.encrypt(_nonce(self.n), bytes(plaintext), ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext); on failure raises and leaves n unchanged."""
        if self._aead is None:
            return bytes(ciphertext)
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted")
        if len(ciphertext) < TAGLEN:
            raise DecryptError("ciphertext shorter than the tag")
        try:
            plaintext = self._aead.decrypt(_nonce(self.n), bytes(ciphertext), ad)
        except InvalidTag:
            raise DecryptError("authentication tag did not verify") from None
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): k = first 32 bytes of ENCRYPT(k, maxnonce, zerolen, zeros)."""
        if self._aead is None:
            raise NoiseError("Rekey without a key")
        key = self._aead.encrypt(_nonce(MAX_NONCE), bytes(KEYLEN), b"")[:KEYLEN]
        nonce = self.n
        self.initialize_key(key)
        self.n = nonce


# ---------------------------------------------------------------- §5.2


class SymmetricState:
    """§5.2: the chaining key ck, the handshake hash h and a CipherState."""

    __slots__ = ("cipher_state", "ck", "h")

    def __init__(self, protocol_name: bytes) -> None:
        """InitializeSymmetric(protocol_name)."""
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = hashlib.sha256(protocol_name).digest()
        self.ck = self.h
        self.cipher_state = CipherState()
        self.cipher_state.initialize_key(None)

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(input_key_material)."""
        self.ck, temp_k = hkdf(self.ck, input_key_material, 2)
        self.cipher_state.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data)."""
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash(input_key_material), used by the `psk` token."""
        self.ck, temp_h, temp_k = hkdf(self.ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self.cipher_state.initialize_key(temp_k)

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash()."""
        return self.h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext)."""
        ciphertext = self.cipher_state.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext); h changes only when decryption succeeded."""
        plaintext = self.cipher_state.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the two transport CipherStates (initiator→responder first)."""
        temp_k1, temp_k2 = hkdf(self.ck, b"", 2)
        c1, c2 = CipherState(), CipherState()
        c1.initialize_key(temp_k1)
        c2.initialize_key(temp_k2)
        return c1, c2


# ---------------------------------------------------------------- §7 patterns


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """Pre-messages (initiator's, responder's) and message patterns; even index = initiator."""

    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[tuple[str, ...], ...]

    @property
    def one_way(self) -> bool:
        return len(self.messages) == 1


def _pattern(text: str) -> HandshakePattern:
    """Parse the specification's notation: `-> s`, `<- s`, `...`, `-> e, es` lines."""
    init_pre: list[str] = []
    resp_pre: list[str] = []
    messages: list[tuple[str, ...]] = []
    lines = [line.strip() for line in text.strip().splitlines()]
    pre = "..." in lines
    for line in lines:
        if line == "...":
            pre = False
            continue
        arrow, _, rest = line.partition(" ")
        tokens = tuple(t.strip() for t in rest.split(","))
        if pre:
            (init_pre if arrow == "->" else resp_pre).extend(tokens)
        else:
            expected = "->" if len(messages) % 2 == 0 else "<-"
            if arrow != expected:
                raise ValueError(f"pattern arrows out of order: {text!r}")
            messages.append(tokens)
    return HandshakePattern(tuple(init_pre), tuple(resp_pre), tuple(messages))


_PATTERN_TEXT: Final[dict[str, str]] = {
    # §7.4 one-way
    "N": "<- s\n...\n-> e, es",
    "K": "-> s\n<- s\n...\n-> e, es, ss",
    "X": "<- s\n...\n-> e, es, s, ss",
    # §7.4 interactive, fundamental
    "NN": "-> e\n<- e, ee",
    "NK": "<- s\n...\n-> e, es\n<- e, ee",
    "NX": "-> e\n<- e, ee, s, es",
    "KN": "-> s\n...\n-> e\n<- e, ee, se",
    "KK": "-> s\n<- s\n...\n-> e, es, ss\n<- e, ee, se",
    "KX": "-> s\n...\n-> e\n<- e, ee, se, s, es",
    "XN": "-> e\n<- e, ee\n-> s, se",
    "XK": "<- s\n...\n-> e, es\n<- e, ee\n-> s, se",
    "XX": "-> e\n<- e, ee, s, es\n-> s, se",
    "IN": "-> e, s\n<- e, ee, se",
    "IK": "<- s\n...\n-> e, es, s, ss\n<- e, ee, se",
    "IX": "-> e, s\n<- e, ee, se, s, es",
    # §7.6 deferred
    "NK1": "<- s\n...\n-> e\n<- e, ee, es",
    "NX1": "-> e\n<- e, ee, s\n-> es",
    "X1N": "-> e\n<- e, ee\n-> s\n<- se",
    "X1K": "<- s\n...\n-> e, es\n<- e, ee\n-> s\n<- se",
    "XK1": "<- s\n...\n-> e\n<- e, ee, es\n-> s, se",
    "X1K1": "<- s\n...\n-> e\n<- e, ee, es\n-> s\n<- se",
    "X1X": "-> e\n<- e, ee, s, es\n-> s\n<- se",
    "XX1": "-> e\n<- e, ee, s\n-> es, s, se",
    "X1X1": "-> e\n<- e, ee, s\n-> es, s\n<- se",
    "K1N": "-> s\n...\n-> e\n<- e, ee\n-> se",
    "K1K": "-> s\n<- s\n...\n-> e, es\n<- e, ee\n-> se",
    "KK1": "-> s\n<- s\n...\n-> e\n<- e, ee, se, es",
    "K1K1": "-> s\n<- s\n...\n-> e\n<- e, ee, es\n-> se",
    "K1X": "-> s\n...\n-> e\n<- e, ee, s, es\n-> se",
    "KX1": "-> s\n...\n-> e\n<- e, ee, se, s\n-> es",
    "K1X1": "-> s\n...\n-> e\n<- e, ee, s\n-> se, es",
    "I1N": "-> e, s\n<- e, ee\n-> se",
    "I1K": "<- s\n...\n-> e, es, s\n<- e, ee\n-> se",
    "IK1": "<- s\n...\n-> e, s\n<- e, ee, se, es",
    "I1K1": "<- s\n...\n-> e, s\n<- e, ee, es\n-> se",
    "I1X": "-> e, s\n<- e, ee, s, es\n-> se",
    "IX1": "-> e, s\n<- e, ee, se, s\n-> es",
    "I1X1": "-> e, s\n<- e, ee, s\n-> se, es",
}

PATTERNS: Final[dict[str, HandshakePattern]] = {
    name: _pattern(text) for name, text in _PATTERN_TEXT.items()
}

_NAME_RE: Final = re.compile(r"Noise_([A-Z1]+)((?:psk\d)(?:\+psk\d)*)?" + re.escape(SUFFIX))


def parse_protocol_name(protocol_name: str) -> HandshakePattern:
    """The pattern named by a full protocol name, with its `pskN` modifiers applied (§9.1)."""
    match = _NAME_RE.fullmatch(protocol_name)
    if match is None or match.group(1) not in PATTERNS:
        raise NoiseError(f"unsupported Noise protocol name {protocol_name!r}")
    base = PATTERNS[match.group(1)]
    messages = [list(m) for m in base.messages]
    for modifier in (match.group(2) or "").split("+"):
        if not modifier:
            continue
        index = int(modifier[3:])
        if index == 0:
            messages[0].insert(0, "psk")
        elif index <= len(messages):
            messages[index - 1].append("psk")
        else:
            raise NoiseError(f"{modifier} beyond the pattern's last message")
    return HandshakePattern(base.initiator_pre, base.responder_pre, tuple(map(tuple, messages)))


# ---------------------------------------------------------------- §5.3


class HandshakeState:
    """§5.3: runs one handshake; `write_message` / `read_message` in pattern order.

    `e` may be given to fix the ephemeral key (test vectors and worked examples);
    otherwise a fresh one is generated when the pattern needs it. After the last
    message `finished` is True, `split()` returns the specification's (c1, c2),
    `transport()` the (send, receive) CipherStates of this side, and
    `get_handshake_hash()` the final h. Calling anything out of turn raises
    NoiseError without changing state; a failed read or write leaves the
    handshake unusable.
    """

    def __init__(
        self,
        protocol_name: str,
        initiator: bool,
        prologue: bytes = b"",
        *,
        s: KeyPair | X25519PrivateKey | bytes | None = None,
        e: KeyPair | X25519PrivateKey | bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> None:
        """Initialize(handshake_pattern, initiator, prologue, s, e, rs, re) + psks."""
        self.pattern = parse_protocol_name(protocol_name)
        self.initiator = initiator
        self.s = _key_pair(s)
        self.e = _key_pair(e)
        self.rs = _public(rs, "rs")
        self.re = _public(re, "re")
        self._psks = list(psks)
        if any(len(p) != 32 for p in self._psks):
            raise NoiseError("a PSK must be 32 bytes")
        self._psk_mode = any("psk" in m for m in self.pattern.messages)
        needed = sum(m.count("psk") for m in self.pattern.messages)
        if len(self._psks) != needed:
            raise NoiseError(f"pattern needs {needed} PSK(s), got {len(self._psks)}")
        self.symmetric_state = SymmetricState(protocol_name.encode("ascii"))
        self.symmetric_state.mix_hash(prologue)
        # Pre-messages: the initiator's first, then the responder's (§7.1).
        for owner_is_initiator, tokens in (
            (True, self.pattern.initiator_pre),
            (False, self.pattern.responder_pre),
        ):
            local = owner_is_initiator == initiator
            for token in tokens:
                key = self._pre_message_key(token, local)
                self.symmetric_state.mix_hash(key)
                if token == "e" and self._psk_mode:
                    self.symmetric_state.mix_key(key)
        self._index = 0
        self._failed = False
        self._result: tuple[CipherState, CipherState] | None = None

    def _pre_message_key(self, token: str, local: bool) -> bytes:
        pair = (self.s if token == "s" else self.e) if local else None
        if token == "s":
            key = pair.public if pair else (None if local else self.rs)
        elif token == "e":
            key = pair.public if pair else (None if local else self.re)
        else:
            raise NoiseError(f"bad pre-message token {token!r}")
        if key is None:
            raise NoiseError(f"pre-message needs the {'local' if local else 'remote'} {token}")
        return key

    # -- state queries

    @property
    def finished(self) -> bool:
        return self._index >= len(self.pattern.messages)

    def is_my_turn(self) -> bool:
        """True when the next handshake message is ours to write."""
        return not self.finished and (self._index % 2 == 0) == self.initiator

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash(): h, which names the finished handshake."""
        if not self.finished:
            raise NoiseError("handshake not finished")
        return self.symmetric_state.get_handshake_hash()

    def _check(self, writing: bool) -> None:
        if self._failed:
            raise NoiseError("handshake already failed")
        if self.finished:
            raise NoiseError("handshake already finished")
        if self.is_my_turn() != writing:
            raise NoiseError("not our turn to write" if writing else "not our turn to read")

    # -- messages

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload, message_buffer): returns the handshake message."""
        self._check(writing=True)
        ss = self.symmetric_state
        out = bytearray()
        try:
            for token in self.pattern.messages[self._index]:
                if token == "e":
                    if self.e is None:
                        self.e = KeyPair.generate()
                    out += self.e.public
                    ss.mix_hash(self.e.public)
                    if self._psk_mode:
                        ss.mix_key(self.e.public)
                elif token == "s":
                    if self.s is None:
                        raise NoiseError("pattern sends s but no static key was given")
                    out += ss.encrypt_and_hash(self.s.public)
                elif token == "psk":
                    ss.mix_key_and_hash(self._psks.pop(0))
                else:
                    ss.mix_key(self._dh_token(token))
            out += ss.encrypt_and_hash(payload)
            if len(out) > MAX_MESSAGE_LEN:
                raise NoiseError("handshake message exceeds 65535 bytes")
        except NoiseError:
            self._failed = True  # h and ck may be half-updated: never continue
            raise
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message, payload_buffer): returns the payload."""
        self._check(writing=False)
        if len(message) > MAX_MESSAGE_LEN:
            raise NoiseError("handshake message exceeds 65535 bytes")
        ss = self.symmetric_state
        view = memoryview(message)
        try:
            for token in self.pattern.messages[self._index]:
                if token == "e":
                    if len(view) < DHLEN:
                        raise NoiseError("handshake message truncated")
                    self.re = bytes(view[:DHLEN])
                    view = view[DHLEN:]
                    ss.mix_hash(self.re)
                    if self._psk_mode:
                        ss.mix_key(self.re)
                elif token == "s":
                    size = DHLEN + (TAGLEN if ss.cipher_state.has_key() else 0)
                    if len(view) < size:
                        raise NoiseError("handshake message truncated")
                    self.rs = ss.decrypt_and_hash(bytes(view[:size]))
                    view = view[size:]
                elif token == "psk":
                    ss.mix_key_and_hash(self._psks.pop(0))
                else:
                    ss.mix_key(self._dh_token(token))
            payload = ss.decrypt_and_hash(bytes(view))
        except NoiseError:
            self._failed = True  # h and ck may be half-updated: never continue
            raise
        self._advance()
        return payload

    def _dh_token(self, token: str) -> bytes:
        # The first letter names the initiator's key, the second the responder's.
        first, second = token[0], token[1]
        local_letter, remote_letter = (first, second) if self.initiator else (second, first)
        local = self.e if local_letter == "e" else self.s
        remote = self.re if remote_letter == "e" else self.rs
        if local is None or remote is None:
            raise NoiseError(f"token {token!r} needs a key that is missing")
        return dh(local, remote)

    def _advance(self) -> None:
        self._index += 1
        if self.finished:
            self._result = self.symmetric_state.split()

    def split(self) -> tuple[CipherState, CipherState]:
        """Split()'s (c1, c2): c1 encrypts initiator → responder, c2 the other way."""
        if self._result is None:
            raise NoiseError("handshake not finished")
        return self._result

    def transport(self) -> tuple[CipherState | None, CipherState | None]:
        """(send, receive) CipherStates for this side. A one-way pattern leaves the
        initiator nothing to receive and the responder nothing to send."""
        c1, c2 = self.split()
        if self.pattern.one_way:
            return (c1, None) if self.initiator else (None, c1)
        return (c1, c2) if self.initiator else (c2, c1)


def _key_pair(key: KeyPair | X25519PrivateKey | bytes | None) -> KeyPair | None:
    if key is None or isinstance(key, KeyPair):
        return key
    if isinstance(key, bytes | bytearray) and len(key) != DHLEN:
        raise NoiseError("a private key must be 32 bytes")
    return KeyPair.from_private(key)


def _public(key: bytes | None, name: str) -> bytes | None:
    if key is not None and len(key) != DHLEN:
        raise NoiseError(f"{name} must be 32 bytes")
    return None if key is None else bytes(key)
