"""ChaCha20-Poly1305 AEAD (RFC 8439) in viper, safe on 32-bit and 64-bit words.

ChaCha20 keeps its 16 state words in viper locals typed `uint`. Viper integers are
machine words: 64-bit on the unix port, 32-bit on the boards. Every value is masked to
32 bits before it is shifted right or stored, so bits a 64-bit word keeps above bit 31
never flow back down; the result is the same on both word sizes and under CPython, where
the test shim makes viper functions plain Python.

Poly1305 uses ten 13-bit limbs (the "donna-16" layout): a limb times 5*r fits in 30
bits and a partial sum of five products stays below 2**32, so no product or sum ever
needs more than a 32-bit unsigned word. The final reduction mod 2**130 - 5 selects
between h and h - p with masks, not a branch.

State buffers hold 32-bit words in memory order, so the code relies on a little-endian
CPU (every MicroPython target in scope: x86-64, ARM, Xtensa, RISC-V).

decrypt() authenticates before it decrypts: it compares the tag with ct.equal and
raises ValueError without producing any plaintext when the tag is wrong.
"""

import sys

import micropython
from micropython import const

from homeseal import ct

try:  # viper casts; only the CPython test shim exports them as names
    from micropython import ptr8, ptr32, uint
except ImportError:
    pass

if sys.byteorder != "little":
    raise ImportError("chachapoly needs a little-endian CPU")

KEY_SIZE = const(32)
NONCE_SIZE = const(12)
TAG_SIZE = const(16)

_SIGMA = b"expand 32-byte k"
_ZERO32 = bytes(32)
# Poly1305 state, 32-bit words: h limbs 0..9, r limbs 10..19, 5*r limbs 21..29,
# word 30 = the 2**128 bit of each block as limb 9 sees it (0 for a padded last block),
# words 31..40 scratch for the final reduction.
_POLY_STATE_BYTES = const(164)
_HIBIT_OFFSET = const(120)


@micropython.viper
def _chacha20_xor(state, src: ptr8, dst: ptr8, n: int):
    """dst[0:n] = src[0:n] XOR keystream. state: words 0..15 the ChaCha20 input block
    (block counter = word 12, advanced per 64-byte block), words 16..31 scratch."""
    st = ptr32(state)
    ks = ptr8(state)
    M = uint(0xFFFFFFFF)
    pos = 0
    while pos < n:
        x0 = uint(st[0])
        x1 = uint(st[1])
        x2 = uint(st[2])
        x3 = uint(st[3])
        x4 = uint(st[4])
        x5 = uint(st[5])
        x6 = uint(st[6])
        x7 = uint(st[7])
        x8 = uint(st[8])
        x9 = uint(st[9])
        x10 = uint(st[10])
        x11 = uint(st[11])
        x12 = uint(st[12])
        x13 = uint(st[13])
        x14 = uint(st[14])
        x15 = uint(st[15])
        for _ in range(10):
            # column round, then diagonal round (RFC 8439 section 2.3)
            x0 += x4
            t = (x12 ^ x0) & M
            x12 = (t << 16) | (t >> 16)
            x8 += x12
            t = (x4 ^ x8) & M
            x4 = (t << 12) | (t >> 20)
            x0 += x4
            t = (x12 ^ x0) & M
            x12 = (t << 8) | (t >> 24)
            x8 += x12
            t = (x4 ^ x8) & M
            x4 = (t << 7) | (t >> 25)
            x1 += x5
            t = (x13 ^ x1) & M
            x13 = (t << 16) | (t >> 16)
            x9 += x13
            t = (x5 ^ x9) & M
            x5 = (t << 12) | (t >> 20)
            x1 += x5
            t = (x13 ^ x1) & M
            x13 = (t << 8) | (t >> 24)
            x9 += x13
            t = (x5 ^ x9) & M
            x5 = (t << 7) | (t >> 25)
            x2 += x6
            t = (x14 ^ x2) & M
            x14 = (t << 16) | (t >> 16)
            x10 += x14
            t = (x6 ^ x10) & M
            x6 = (t << 12) | (t >> 20)
            x2 += x6
            t = (x14 ^ x2) & M
            x14 = (t << 8) | (t >> 24)
            x10 += x14
            t = (x6 ^ x10) & M
            x6 = (t << 7) | (t >> 25)
            x3 += x7
            t = (x15 ^ x3) & M
            x15 = (t << 16) | (t >> 16)
            x11 += x15
            t = (x7 ^ x11) & M
            x7 = (t << 12) | (t >> 20)
            x3 += x7
            t = (x15 ^ x3) & M
            x15 = (t << 8) | (t >> 24)
            x11 += x15
            t = (x7 ^ x11) & M
            x7 = (t << 7) | (t >> 25)
            x0 += x5
            t = (x15 ^ x0) & M
            x15 = (t << 16) | (t >> 16)
            x10 += x15
            t = (x5 ^ x10) & M
            x5 = (t << 12) | (t >> 20)
            x0 += x5
            t = (x15 ^ x0) & M
            x15 = (t << 8) | (t >> 24)
            x10 += x15
            t = (x5 ^ x10) & M
            x5 = (t << 7) | (t >> 25)
            x1 += x6
            t = (x12 ^ x1) & M
            x12 = (t << 16) | (t >> 16)
            x11 += x12
            t = (x6 ^ x11) & M
            x6 = (t << 12) | (t >> 20)
            x1 += x6
            t = (x12 ^ x1) & M
            x12 = (t << 8) | (t >> 24)
            x11 += x12
            t = (x6 ^ x11) & M
            x6 = (t << 7) | (t >> 25)
            x2 += x7
            t = (x13 ^ x2) & M
            x13 = (t << 16) | (t >> 16)
            x8 += x13
            t = (x7 ^ x8) & M
            x7 = (t << 12) | (t >> 20)
            x2 += x7
            t = (x13 ^ x2) & M
            x13 = (t << 8) | (t >> 24)
            x8 += x13
            t = (x7 ^ x8) & M
            x7 = (t << 7) | (t >> 25)
            x3 += x4
            t = (x14 ^ x3) & M
            x14 = (t << 16) | (t >> 16)
            x9 += x14
            t = (x4 ^ x9) & M
            x4 = (t << 12) | (t >> 20)
            x3 += x4
            t = (x14 ^ x3) & M
            x14 = (t << 8) | (t >> 24)
            x9 += x14
            t = (x4 ^ x9) & M
            x4 = (t << 7) | (t >> 25)
        st[16] = (x0 + uint(st[0])) & M
        st[17] = (x1 + uint(st[1])) & M
        st[18] = (x2 + uint(st[2])) & M
        st[19] = (x3 + uint(st[3])) & M
        st[20] = (x4 + uint(st[4])) & M
        st[21] = (x5 + uint(st[5])) & M
        st[22] = (x6 + uint(st[6])) & M
        st[23] = (x7 + uint(st[7])) & M
        st[24] = (x8 + uint(st[8])) & M
        st[25] = (x9 + uint(st[9])) & M
        st[26] = (x10 + uint(st[10])) & M
        st[27] = (x11 + uint(st[11])) & M
        st[28] = (x12 + uint(st[12])) & M
        st[29] = (x13 + uint(st[13])) & M
        st[30] = (x14 + uint(st[14])) & M
        st[31] = (x15 + uint(st[15])) & M
        st[12] = (uint(st[12]) + 1) & M
        m = n - pos
        if m > 64:  # noqa: PLR1730  (viper: min() would box the native ints)
            m = 64
        for i in range(m):
            dst[pos + i] = src[pos + i] ^ ks[64 + i]
        pos += m


def _chacha_state(key, counter, nonce):
    """ChaCha20 input block (RFC 8439 section 2.3) followed by 64 bytes of scratch."""
    st = bytearray(128)
    st[0:16] = _SIGMA
    st[16:48] = key
    st[48:52] = counter.to_bytes(4, "little")
    st[52:64] = nonce
    return st


def _check(key, nonce):
    if len(key) != KEY_SIZE:
        raise ValueError("key must be 32 bytes")
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")


def chacha20_block(key, counter, nonce):
    """The 64-byte output of the ChaCha20 block function (RFC 8439 section 2.3)."""
    _check(key, nonce)
    out = bytearray(64)
    _chacha20_xor(_chacha_state(key, counter, nonce), bytes(64), out, 64)
    return bytes(out)


def chacha20_xor(key, counter, nonce, data):
    """ChaCha20 encryption = decryption (RFC 8439 section 2.4)."""
    _check(key, nonce)
    out = bytearray(len(data))
    _chacha20_xor(_chacha_state(key, counter, nonce), data, out, len(data))
    return bytes(out)


@micropython.viper
def _poly_init(state, key: ptr8):
    """h = 0; r = clamp(key[0:16]) (RFC 8439 section 2.5) as 13-bit limbs, and 5*r."""
    st = ptr32(state)
    t0 = uint(key[0]) | (uint(key[1]) << 8)
    t1 = uint(key[2]) | (uint(key[3] & 15) << 8)
    t2 = uint(key[4] & 252) | (uint(key[5]) << 8)
    t3 = uint(key[6]) | (uint(key[7] & 15) << 8)
    t4 = uint(key[8] & 252) | (uint(key[9]) << 8)
    t5 = uint(key[10]) | (uint(key[11] & 15) << 8)
    t6 = uint(key[12] & 252) | (uint(key[13]) << 8)
    t7 = uint(key[14]) | (uint(key[15] & 15) << 8)
    st[10] = t0 & 0x1FFF
    st[11] = ((t0 >> 13) | (t1 << 3)) & 0x1FFF
    st[12] = ((t1 >> 10) | (t2 << 6)) & 0x1FFF
    st[13] = ((t2 >> 7) | (t3 << 9)) & 0x1FFF
    st[14] = ((t3 >> 4) | (t4 << 12)) & 0x1FFF
    st[15] = (t4 >> 1) & 0x1FFF
    st[16] = ((t4 >> 14) | (t5 << 2)) & 0x1FFF
    st[17] = ((t5 >> 11) | (t6 << 5)) & 0x1FFF
    st[18] = ((t6 >> 8) | (t7 << 8)) & 0x1FFF
    st[19] = t7 >> 5
    for i in range(10):
        st[i] = 0
        st[20 + i] = st[10 + i] * 5
    st[30] = 1 << 11


@micropython.viper
def _poly_blocks(state, m: ptr8, nblocks: int):
    """Absorb nblocks 16-byte blocks of m: h = (h + block + hibit) * r, partly reduced."""
    st = ptr32(state)
    h0 = uint(st[0])
    h1 = uint(st[1])
    h2 = uint(st[2])
    h3 = uint(st[3])
    h4 = uint(st[4])
    h5 = uint(st[5])
    h6 = uint(st[6])
    h7 = uint(st[7])
    h8 = uint(st[8])
    h9 = uint(st[9])
    r0 = uint(st[10])
    r1 = uint(st[11])
    r2 = uint(st[12])
    r3 = uint(st[13])
    r4 = uint(st[14])
    r5 = uint(st[15])
    r6 = uint(st[16])
    r7 = uint(st[17])
    r8 = uint(st[18])
    r9 = uint(st[19])
    s1 = uint(st[21])
    s2 = uint(st[22])
    s3 = uint(st[23])
    s4 = uint(st[24])
    s5 = uint(st[25])
    s6 = uint(st[26])
    s7 = uint(st[27])
    s8 = uint(st[28])
    s9 = uint(st[29])
    hibit = uint(st[30])
    o = 0
    for _ in range(nblocks):
        t0 = uint(m[o]) | (uint(m[o + 1]) << 8)
        t1 = uint(m[o + 2]) | (uint(m[o + 3]) << 8)
        t2 = uint(m[o + 4]) | (uint(m[o + 5]) << 8)
        t3 = uint(m[o + 6]) | (uint(m[o + 7]) << 8)
        t4 = uint(m[o + 8]) | (uint(m[o + 9]) << 8)
        t5 = uint(m[o + 10]) | (uint(m[o + 11]) << 8)
        t6 = uint(m[o + 12]) | (uint(m[o + 13]) << 8)
        t7 = uint(m[o + 14]) | (uint(m[o + 15]) << 8)
        o += 16
        h0 += t0 & 0x1FFF
        h1 += ((t0 >> 13) | (t1 << 3)) & 0x1FFF
        h2 += ((t1 >> 10) | (t2 << 6)) & 0x1FFF
        h3 += ((t2 >> 7) | (t3 << 9)) & 0x1FFF
        h4 += ((t3 >> 4) | (t4 << 12)) & 0x1FFF
        h5 += (t4 >> 1) & 0x1FFF
        h6 += ((t4 >> 14) | (t5 << 2)) & 0x1FFF
        h7 += ((t5 >> 11) | (t6 << 5)) & 0x1FFF
        h8 += ((t6 >> 8) | (t7 << 8)) & 0x1FFF
        h9 += (t7 >> 5) | hibit
        # h *= r mod 2**130 - 5: limb i sums h[j] * r[i-j], with 5*r[i+10-j] past limb 9;
        # carry after five products so that no partial sum reaches 2**32
        c = uint(0)
        d = c + h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6
        c = d >> 13
        d = (d & 0x1FFF) + h5 * s5 + h6 * s4 + h7 * s3 + h8 * s2 + h9 * s1
        c += d >> 13
        d0 = d & 0x1FFF
        d = c + h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7
        c = d >> 13
        d = (d & 0x1FFF) + h5 * s6 + h6 * s5 + h7 * s4 + h8 * s3 + h9 * s2
        c += d >> 13
        d1 = d & 0x1FFF
        d = c + h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8
        c = d >> 13
        d = (d & 0x1FFF) + h5 * s7 + h6 * s6 + h7 * s5 + h8 * s4 + h9 * s3
        c += d >> 13
        d2 = d & 0x1FFF
        d = c + h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9
        c = d >> 13
        d = (d & 0x1FFF) + h5 * s8 + h6 * s7 + h7 * s6 + h8 * s5 + h9 * s4
        c += d >> 13
        d3 = d & 0x1FFF
        d = c + h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0
        c = d >> 13
        d = (d & 0x1FFF) + h5 * s9 + h6 * s8 + h7 * s7 + h8 * s6 + h9 * s5
        c += d >> 13
        d4 = d & 0x1FFF
        d = c + h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1
        c = d >> 13
        d = (d & 0x1FFF) + h5 * r0 + h6 * s9 + h7 * s8 + h8 * s7 + h9 * s6
        c += d >> 13
        d5 = d & 0x1FFF
        d = c + h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2
        c = d >> 13
        d = (d & 0x1FFF) + h5 * r1 + h6 * r0 + h7 * s9 + h8 * s8 + h9 * s7
        c += d >> 13
        d6 = d & 0x1FFF
        d = c + h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3
        c = d >> 13
        d = (d & 0x1FFF) + h5 * r2 + h6 * r1 + h7 * r0 + h8 * s9 + h9 * s8
        c += d >> 13
        d7 = d & 0x1FFF
        d = c + h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4
        c = d >> 13
        d = (d & 0x1FFF) + h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * s9
        c += d >> 13
        d8 = d & 0x1FFF
        d = c + h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5
        c = d >> 13
        d = (d & 0x1FFF) + h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0
        c += d >> 13
        d9 = d & 0x1FFF
        c = c * 5 + d0
        h0 = c & 0x1FFF
        h1 = d1 + (c >> 13)
        h2 = d2
        h3 = d3
        h4 = d4
        h5 = d5
        h6 = d6
        h7 = d7
        h8 = d8
        h9 = d9
    st[0] = h0
    st[1] = h1
    st[2] = h2
    st[3] = h3
    st[4] = h4
    st[5] = h5
    st[6] = h6
    st[7] = h7
    st[8] = h8
    st[9] = h9


@micropython.viper
def _poly_finish(state, key: ptr8, out: ptr8):
    """out[0:16] = ((h mod 2**130 - 5) + s) mod 2**128 with s = key[16:32]."""
    st = ptr32(state)
    # two carry passes (overflow past limb 9 folds into limb 0 times 5) leave every
    # limb below 2**13 and h below 2**130
    for _ in range(2):
        c = uint(0)
        for i in range(10):
            v = uint(st[i]) + c
            c = v >> 13
            st[i] = v & 0x1FFF
        st[0] = uint(st[0]) + c * 5
    # g = h + 5; bit 130 of g is set exactly when h >= p, and then h - p = g mod 2**130
    c = uint(5)
    for i in range(10):
        v = uint(st[i]) + c
        c = v >> 13
        st[31 + i] = v & 0x1FFF
    use_g = uint(0) - c
    use_h = c - 1
    for i in range(10):
        st[i] = (uint(st[i]) & use_h) | (uint(st[31 + i]) & use_g)
    h0 = uint(st[0])
    h1 = uint(st[1])
    h2 = uint(st[2])
    h3 = uint(st[3])
    h4 = uint(st[4])
    h5 = uint(st[5])
    h6 = uint(st[6])
    h7 = uint(st[7])
    h8 = uint(st[8])
    h9 = uint(st[9])
    # h mod 2**128 as eight 16-bit words
    st[31] = (h0 | (h1 << 13)) & 0xFFFF
    st[32] = ((h1 >> 3) | (h2 << 10)) & 0xFFFF
    st[33] = ((h2 >> 6) | (h3 << 7)) & 0xFFFF
    st[34] = ((h3 >> 9) | (h4 << 4)) & 0xFFFF
    st[35] = ((h4 >> 12) | (h5 << 1) | (h6 << 14)) & 0xFFFF
    st[36] = ((h6 >> 2) | (h7 << 11)) & 0xFFFF
    st[37] = ((h7 >> 5) | (h8 << 8)) & 0xFFFF
    st[38] = ((h8 >> 8) | (h9 << 5)) & 0xFFFF
    f = uint(0)
    for i in range(8):
        f = (f >> 16) + uint(st[31 + i]) + uint(key[16 + 2 * i]) + (uint(key[17 + 2 * i]) << 8)
        out[2 * i] = f & 0xFF
        out[2 * i + 1] = (f >> 8) & 0xFF


def _poly_padded(st, data):
    """Absorb data zero-padded to a multiple of 16 bytes (RFC 8439 section 2.8)."""
    full = len(data) >> 4
    if full:
        _poly_blocks(st, data, full)
    rem = len(data) & 15
    if rem:
        blk = bytearray(16)
        blk[:rem] = data[full << 4 :]
        _poly_blocks(st, blk, 1)


def poly1305(key, msg):
    """Poly1305 one-time authenticator (RFC 8439 section 2.5): 16-byte tag."""
    if len(key) != 32:
        raise ValueError("poly1305 key must be 32 bytes")
    st = bytearray(_POLY_STATE_BYTES)
    _poly_init(st, key)
    full = len(msg) >> 4
    if full:
        _poly_blocks(st, msg, full)
    rem = len(msg) & 15
    if rem:
        # a short last block gets its 1 byte right after the data, not at 2**128
        blk = bytearray(16)
        blk[:rem] = msg[full << 4 :]
        blk[rem] = 1
        st[_HIBIT_OFFSET : _HIBIT_OFFSET + 4] = bytes(4)
        _poly_blocks(st, blk, 1)
    tag = bytearray(16)
    _poly_finish(st, key, tag)
    return bytes(tag)


def _aead_tag(otk, ad, ctext):
    st = bytearray(_POLY_STATE_BYTES)
    _poly_init(st, otk)
    _poly_padded(st, ad)
    _poly_padded(st, ctext)
    _poly_blocks(st, len(ad).to_bytes(8, "little") + len(ctext).to_bytes(8, "little"), 1)
    tag = bytearray(16)
    _poly_finish(st, otk, tag)
    return tag


def encrypt(key, nonce, ad, plaintext, head=b""):
    """AEAD_CHACHA20_POLY1305 (RFC 8439 section 2.8): ciphertext ‖ 16-byte tag.

    With a `head` (a message's framing bytes), the result is one bytearray
    `head ‖ ciphertext ‖ tag`: a framed message costs one allocation of its size,
    not three (the session's TRANSPORT payloads; measured on a 128 KiB heap, the
    copies were what a fragmented heap could not find room for)."""
    _check(key, nonce)
    st = _chacha_state(key, 0, nonce)
    otk = bytearray(32)
    _chacha20_xor(st, _ZERO32, otk, 32)  # block 0 gives the Poly1305 key; text starts at 1
    n = len(plaintext)
    h = len(head)
    out = bytearray(h + n + TAG_SIZE)
    mv = memoryview(out)
    if h:
        out[:h] = head
        _chacha20_xor(st, plaintext, mv[h:], n)
    else:
        _chacha20_xor(st, plaintext, out, n)
    out[h + n :] = _aead_tag(otk, ad, mv[h : h + n])
    return out if h else bytes(out)


def decrypt(key, nonce, ad, data):
    """Inverse of encrypt(); raises ValueError (and returns nothing) on a wrong tag."""
    _check(key, nonce)
    n = len(data) - TAG_SIZE
    if n < 0:
        raise ValueError("ciphertext shorter than the tag")
    st = _chacha_state(key, 0, nonce)
    otk = bytearray(32)
    _chacha20_xor(st, _ZERO32, otk, 32)
    data = memoryview(data)
    if not ct.equal(_aead_tag(otk, ad, data[:n]), data[n:]):
        raise ValueError("authentication failed")
    out = bytearray(n)
    _chacha20_xor(st, data, out, n)
    return bytes(out)
