# The Noise Protocol Framework (revision 34) for 25519 / ChaChaPoly / SHA256.
#
# Names follow the specification (section 5): CipherState, SymmetricState,
# HandshakeState, with the spec's functions in snake_case (MixKey -> mix_key,
# EncryptAndHash -> encrypt_and_hash, WriteMessage -> write_message, ...).
# Every pattern of the specification's sections 7.4, 7.5 and 18 (one-way,
# interactive, deferred) is supported, with any `pskN` modifiers.
# Out-of-order calls raise RuntimeError; bad data (a failed decryption, a
# short message, a DH to a low-order point) raises ValueError and ends the
# handshake.

from hashlib import sha256

from micropython import const

from homeseal import chachapoly, kdf, x25519

DHLEN = const(32)
HASHLEN = const(32)
_TAGLEN = const(16)
MAX_MESSAGE = const(65535)
MAX_NONCE = 0xFFFFFFFFFFFFFFFF  # 2^64 - 1: reserved for Rekey, never a message nonce
_SUFFIX = "_25519_ChaChaPoly_SHA256"
_ZERO32 = bytes(32)
_EMPTY = b""

# Patterns are written "initiator pre-message|responder pre-message|message 1|
# message 2|..."; messages alternate, the first one from the initiator (->).
# The device speaks KK only. Every other pattern of the specification is in
# noise_patterns.py, imported the first time one is asked for: the whole table
# held ~3.5 KB of RAM at rest on the unix port.
_KK = "s|s|e es ss|e ee se"
_ONE_WAY = ("N", "K", "X")


def parse_protocol_name(name):
    """ "Noise_KKpsk2_25519_ChaChaPoly_SHA256" -> (pre_i, pre_r, messages, one_way).

    pre_i / pre_r are token lists; messages is a list of token lists."""
    if not name.startswith("Noise_") or not name.endswith(_SUFFIX):
        raise ValueError("unsupported Noise protocol: " + name)
    pattern = name[6 : len(name) - len(_SUFFIX)]
    base = pattern
    mods = []
    i = pattern.find("psk")
    if i > 0:
        base = pattern[:i]
        mods = pattern[i:].split("+")
    if base == "KK":
        spec = _KK
    else:
        from homeseal import noise_patterns

        spec = noise_patterns.PATTERNS.get(base)
    if spec is None:
        raise ValueError("unknown Noise pattern: " + pattern)
    parts = [p.split() for p in spec.split("|")]
    messages = parts[2:]
    for mod in mods:
        if not mod.startswith("psk") or not mod[3:].isdigit():
            raise ValueError("unknown Noise modifier: " + mod)
        pos = int(mod[3:])
        if pos > len(messages):
            raise ValueError("psk modifier beyond the pattern: " + mod)
        if pos == 0:
            messages[0].insert(0, "psk")
        else:
            messages[pos - 1].append("psk")
    return parts[0], parts[1], messages, base in _ONE_WAY


def _hkdf(ck, ikm, n):
    # Noise's HKDF (section 4.3): an HMAC-SHA256 chain, 2 or 3 outputs.
    temp_key = kdf.hmac_sha256(ck, ikm)
    out1 = kdf.hmac_sha256(temp_key, b"\x01")
    out2 = kdf.hmac_sha256(temp_key, out1 + b"\x02")
    if n == 2:
        return out1, out2
    return out1, out2, kdf.hmac_sha256(temp_key, out2 + b"\x03")


def generate_keypair():
    """A fresh X25519 key pair (private, public). Pass it as `e` to a HandshakeState
    to take the ephemeral key's cost before the peer's message arrives."""
    priv = x25519.generate_private()
    return priv, x25519.public_key(priv)


def static_dh(s, rs):
    """DH(s, rs) for the `ss` token: computed once per peer and passed as `ss=`."""
    return x25519.dh(_keypair(s)[0], rs)


def _keypair(key):
    # A key pair is (private, public); a bare 32-byte private key gets its public derived.
    if key is None or isinstance(key, tuple):
        return key
    if len(key) != DHLEN:
        raise ValueError("X25519 private key must be 32 bytes")
    key = bytes(key)
    return key, x25519.public_key(key)


class CipherState:
    """k (32 bytes or None) and the 64-bit message counter n."""

    def __init__(self, key=None):
        self.k = None
        self.n = 0
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key):
        self.k = key
        self.n = 0

    def has_key(self):
        return self.k is not None

    def set_nonce(self, nonce):
        self.n = nonce

    @staticmethod
    def _nonce(n):
        # ChaChaPoly nonce: 32 bits of zeros, then n as 64-bit little-endian.
        return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")

    def encrypt_with_ad(self, ad, plaintext, head=b""):
        """EncryptWithAd; a `head` comes first in the same buffer (chachapoly.encrypt)."""
        if self.k is None:
            return bytes(head) + bytes(plaintext)
        if self.n >= MAX_NONCE:
            raise ValueError("Noise nonce exhausted")
        out = chachapoly.encrypt(self.k, self._nonce(self.n), ad, plaintext, head)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad, ciphertext):
        """Plaintext, or ValueError with n unchanged (the caller decides what to do)."""
        if self.k is None:
            return bytes(ciphertext)
        if self.n >= MAX_NONCE:
            raise ValueError("Noise nonce exhausted")
        out = chachapoly.decrypt(self.k, self._nonce(self.n), ad, ciphertext)
        self.n += 1
        return out

    def rekey(self):
        self.k = chachapoly.encrypt(self.k, self._nonce(MAX_NONCE), _EMPTY, _ZERO32)[:32]


class SymmetricState:
    """ck, h and a CipherState (section 5.2)."""

    def __init__(self, protocol_name):
        # InitializeSymmetric
        name = protocol_name.encode() if isinstance(protocol_name, str) else bytes(protocol_name)
        h = name + bytes(HASHLEN - len(name)) if len(name) <= HASHLEN else sha256(name).digest()
        self.ck = h
        self.h = h
        self.cipher = CipherState()

    def mix_key(self, ikm):
        self.ck, temp_k = _hkdf(self.ck, ikm, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data):
        h = sha256(self.h)
        h.update(data)
        self.h = h.digest()

    def mix_key_and_hash(self, ikm):
        self.ck, temp_h, temp_k = _hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k)

    def get_handshake_hash(self):
        return self.h

    def encrypt_and_hash(self, plaintext):
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext):
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self):
        temp_k1, temp_k2 = _hkdf(self.ck, _EMPTY, 2)
        return CipherState(temp_k1), CipherState(temp_k2)


class HandshakeState:
    """Initialize(protocol, initiator, prologue, s, e, rs, re, psks) and the message loop.

    s and e are key pairs (private, public) or bare 32-byte private keys; rs and re
    are 32-byte public keys; psks a list of 32-byte keys in the order the pattern
    uses them. When the last handshake message has been written or read,
    `finished` is True and split() gives the transport CipherStates (c1, c2).

    Two explicit precomputations keep X25519 off the critical path (each X25519 is
    most of a handshake's time on a board): `e` generated before the peer's message
    arrives (generate_keypair()), and `ss`, the static-static DH(s, rs), which is
    the same for every handshake between the same two static keys (see
    static_dh()). `ss` is a secret as sensitive as s itself."""

    def __init__(
        self,
        protocol_name,
        initiator,
        prologue=b"",
        s=None,
        e=None,
        rs=None,
        re=None,
        psks=None,
        ss=None,
    ):
        pre_i, pre_r, self._messages, self._one_way = parse_protocol_name(protocol_name)
        self.initiator = bool(initiator)
        self.s = _keypair(s)
        self.e = _keypair(e)
        self.rs = None if rs is None else bytes(rs)
        self.re = None if re is None else bytes(re)
        self._psks = list(psks or ())
        self._ss_dh = None if ss is None else bytes(ss)
        if self._ss_dh is not None and len(self._ss_dh) != DHLEN:
            raise ValueError("ss must be 32 bytes")
        self._psk_mode = False
        n_psk = 0
        for msg in self._messages:
            for token in msg:
                if token == "psk":
                    n_psk += 1
                    self._psk_mode = True
        if len(self._psks) != n_psk:
            raise ValueError("pattern needs %d psks" % n_psk)
        for psk in self._psks:
            if len(psk) != 32:
                raise ValueError("psk must be 32 bytes")
        self.symmetric_state = SymmetricState(protocol_name)
        self.symmetric_state.mix_hash(prologue)
        # Pre-messages: the initiator's first, then the responder's (section 7.1).
        for tokens, ours in ((pre_i, self.initiator), (pre_r, not self.initiator)):
            for token in tokens:
                if token == "s":
                    key = self.s[1] if ours and self.s else (None if ours else self.rs)
                else:
                    key = self.e[1] if ours and self.e else (None if ours else self.re)
                if key is None:
                    raise ValueError("pre-message needs the %s key" % token)
                self.symmetric_state.mix_hash(key)
                if token == "e" and self._psk_mode:
                    self.symmetric_state.mix_key(key)  # section 9.2: every "e" in a PSK handshake
        self._index = 0
        self._failed = False
        self.finished = False
        self._split = None
        self._h = None

    def _check_turn(self, writing):
        if self._failed:
            raise RuntimeError("Noise handshake already failed")
        if self.finished:
            raise RuntimeError("Noise handshake already finished")
        initiator_turn = self._index % 2 == 0
        if writing != (initiator_turn == self.initiator):
            raise RuntimeError("Noise handshake: not this party's turn")

    def _dh_token(self, token):
        # es: the initiator's e with the responder's s; se: the other way round.
        if token == "ee":
            return x25519.dh(self.e[0], self.re)
        if token == "ss":
            if self._ss_dh is not None:
                return self._ss_dh
            return x25519.dh(self.s[0], self.rs)
        if (token == "es") == self.initiator:
            return x25519.dh(self.e[0], self.rs)
        return x25519.dh(self.s[0], self.re)

    def _need(self, token):
        # A DH needs our key and the peer's: a ValueError, not a TypeError deep inside.
        ours = self.e if token[0 if self.initiator else 1] == "e" else self.s
        theirs = self.re if token[1 if self.initiator else 0] == "e" else self.rs
        if ours is None or theirs is None:
            raise ValueError("Noise token %s: key missing" % token)

    def _advance(self):
        self._index += 1
        if self._index == len(self._messages):
            self.finished = True
            self._h = self.symmetric_state.get_handshake_hash()
            self._split = self.symmetric_state.split()
            # The handshake's secrets are no longer needed.
            self.symmetric_state = None
            self.e = None
            self._psks = None
            self._ss_dh = None

    def write_message(self, payload=b""):
        """WriteMessage: the next handshake message carrying `payload`."""
        self._check_turn(True)
        ok = False
        try:
            out = bytearray()
            sym = self.symmetric_state
            for token in self._messages[self._index]:
                if token == "e":
                    if self.e is None:
                        self.e = generate_keypair()
                    out += self.e[1]
                    sym.mix_hash(self.e[1])
                    if self._psk_mode:
                        sym.mix_key(self.e[1])
                elif token == "s":
                    if self.s is None:
                        raise ValueError("Noise token s: no static key")
                    out += sym.encrypt_and_hash(self.s[1])
                elif token == "psk":
                    sym.mix_key_and_hash(self._psks.pop(0))
                else:
                    self._need(token)
                    sym.mix_key(self._dh_token(token))
            out += sym.encrypt_and_hash(payload)
            if len(out) > MAX_MESSAGE:
                raise ValueError("Noise message too long")
            ok = True
        finally:
            if not ok:
                self._failed = True
        self._advance()
        return bytes(out)

    def read_message(self, message):
        """ReadMessage: the payload of the peer's next handshake message, or ValueError."""
        self._check_turn(False)
        ok = False
        try:
            if len(message) > MAX_MESSAGE:
                raise ValueError("Noise message too long")
            message = bytes(message)
            sym = self.symmetric_state
            off = 0
            for token in self._messages[self._index]:
                if token == "e":
                    if self.re is not None or len(message) - off < DHLEN:
                        raise ValueError("Noise message: bad e")
                    self.re = message[off : off + DHLEN]
                    off += DHLEN
                    sym.mix_hash(self.re)
                    if self._psk_mode:
                        sym.mix_key(self.re)
                elif token == "s":
                    n = DHLEN + (_TAGLEN if sym.cipher.has_key() else 0)
                    if self.rs is not None or len(message) - off < n:
                        raise ValueError("Noise message: bad s")
                    self.rs = sym.decrypt_and_hash(message[off : off + n])
                    off += n
                elif token == "psk":
                    sym.mix_key_and_hash(self._psks.pop(0))
                else:
                    self._need(token)
                    sym.mix_key(self._dh_token(token))
            rest = message[off:]
            if sym.cipher.has_key() and len(rest) < _TAGLEN:
                raise ValueError("Noise message too short")
            payload = sym.decrypt_and_hash(rest)
            ok = True
        finally:
            if not ok:
                self._failed = True
        self._advance()
        return payload

    def get_handshake_hash(self):
        if not self.finished:
            raise RuntimeError("Noise handshake not finished")
        return self._h

    def split(self):
        """(c1, c2): c1 encrypts initiator -> responder, c2 responder -> initiator."""
        if not self.finished:
            raise RuntimeError("Noise handshake not finished")
        return self._split

    def transport(self):
        """(send, receive) CipherStates for this party; one-way patterns have no receive."""
        c1, c2 = self.split()
        if self._one_way:
            return (c1, None) if self.initiator else (None, c1)
        return (c1, c2) if self.initiator else (c2, c1)
