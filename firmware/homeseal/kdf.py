"""HMAC-SHA256 (RFC 2104), HKDF-SHA256 (RFC 5869), PBKDF2-HMAC-SHA256 (RFC 8018).

Built on the port's `hashlib.sha256`, which on MicroPython has no `.copy()`: the
padded inner and outer keys are computed once per key and each HMAC hashes
`ipad ‖ msg` and `opad ‖ inner` from scratch. PBKDF2 reuses two 96-byte buffers
(pad ‖ 32-byte chaining value), so an iteration is two one-shot hashes of 96 bytes
and an XOR into a big-integer accumulator.
"""

from hashlib import sha256

from micropython import const

_BLOCK = const(64)
_HASH_LEN = const(32)


def _pads(key):
    """(ipad key, opad key), each 64 bytes, for HMAC-SHA256 with this key."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(len(key)):
        ipad[i] = key[i]
        opad[i] = key[i]
    for i in range(_BLOCK):
        ipad[i] ^= 0x36
        opad[i] ^= 0x5C
    return ipad, opad


def _hmac(pads, msg):
    h = sha256(pads[0])
    h.update(msg)
    h2 = sha256(pads[1])
    h2.update(h.digest())
    return h2.digest()


def hmac_sha256(key, msg):
    """HMAC-SHA256(key, msg) -> 32 bytes."""
    return _hmac(_pads(key), msg)


def hkdf_extract(salt, ikm):
    """HKDF-Extract: PRK = HMAC(salt, ikm); an empty or None salt means 32 zero bytes."""
    if not salt:
        salt = bytes(_HASH_LEN)
    return hmac_sha256(salt, ikm)


def hkdf_expand(prk, info, length):
    """HKDF-Expand: `length` bytes (at most 255 * 32) of T(1) ‖ T(2) ‖ ..."""
    if length < 0 or length > 255 * _HASH_LEN:
        raise ValueError("hkdf length")
    pads = _pads(prk)
    out = bytearray()
    t = b""
    i = 1
    while len(out) < length:
        h = sha256(pads[0])
        h.update(t)
        h.update(info)
        h.update(bytes((i,)))
        h2 = sha256(pads[1])
        h2.update(h.digest())
        t = h2.digest()
        out.extend(t)
        i += 1
    return bytes(out[:length])


def hkdf(salt, ikm, info, length):
    """HKDF-SHA256(salt, ikm, info, length) -> bytes."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def pbkdf2_hmac_sha256(password, salt, iterations, dklen):
    """PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) -> dklen bytes."""
    if iterations < 1 or dklen < 1:
        raise ValueError("pbkdf2 parameters")
    ipad, opad = _pads(password)
    ibuf = bytearray(_BLOCK + _HASH_LEN)
    obuf = bytearray(_BLOCK + _HASH_LEN)
    ibuf[:_BLOCK] = ipad
    obuf[:_BLOCK] = opad
    ichain = memoryview(ibuf)[_BLOCK:]
    ochain = memoryview(obuf)[_BLOCK:]
    out = bytearray()
    block = 1
    while len(out) < dklen:
        h = sha256(ipad)
        h.update(salt)
        h.update(block.to_bytes(4, "big"))
        ochain[:] = h.digest()
        u = sha256(obuf).digest()
        acc = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            ichain[:] = u
            ochain[:] = sha256(ibuf).digest()
            u = sha256(obuf).digest()
            acc ^= int.from_bytes(u, "big")
        out.extend(acc.to_bytes(_HASH_LEN, "big"))
        block += 1
    return bytes(out[:dklen])
