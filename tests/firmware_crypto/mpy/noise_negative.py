# Noise state-machine misuse and bad input on the unix port.
# Prints "name outcome" lines: "ok", a value, or the exception's class name.
from homeseal import noise, noise_patterns, x25519

KK = "Noise_KK_25519_ChaChaPoly_SHA256"
I_S = bytes(range(1, 33))
R_S = bytes(range(33, 65))
I_E = bytes(range(65, 97))
R_E = bytes(range(97, 129))
I_PUB = x25519.public_key(I_S)
R_PUB = x25519.public_key(R_S)


def check(name, fn):
    try:
        r = fn()
        print(name, "ok" if r is None or r is True else r)
    except Exception as e:  # the outcome is what is printed
        print(name, type(e).__name__)


def pair(**kw):
    i = noise.HandshakeState(KK, True, b"p", s=I_S, e=kw.get("ie", I_E), rs=R_PUB)
    r = noise.HandshakeState(KK, False, b"p", s=R_S, e=kw.get("re", R_E), rs=I_PUB)
    return i, r


def flip(b, k):
    b = bytearray(b)
    b[k] ^= 0x80
    return bytes(b)


# Turn order.
i, r = pair()
check("responder_writes_first", lambda: r.write_message(b""))
check("initiator_reads_first", lambda: i.read_message(bytes(48)))
msg1 = i.write_message(b"")
print("msg1_len", len(msg1))
check("initiator_writes_twice", lambda: i.write_message(b""))
check("split_before_finished", r.split)
check("hash_before_finished", r.get_handshake_hash)
check("read_msg1", lambda: r.read_message(msg1) == b"")
msg2 = r.write_message(b"")
check("read_msg2", lambda: i.read_message(msg2) == b"")
check("write_after_finished", lambda: i.write_message(b""))
check("read_after_finished", lambda: r.read_message(msg2))
print("hashes_equal", i.get_handshake_hash() == r.get_handshake_hash())
print("split_is_transport", i.split()[0] is i.transport()[0] and r.split()[1] is r.transport()[0])

# Tampered, truncated, empty and oversized handshake messages.
BAD_MSG1 = (
    ("flip_e", flip(msg1, 0)),
    ("flip_tag", flip(msg1, 47)),
    ("truncated", msg1[:47]),
    ("e_only", msg1[:32]),
    ("empty", b""),
    ("extra_byte", msg1 + b"\x00"),
    ("too_long", msg1 + bytes(65536 - 48)),
)
for name, bad in BAD_MSG1:
    _, r2 = pair()
    check("msg1_" + name, lambda r2=r2, bad=bad: r2.read_message(bad))
    check("msg1_" + name + "_then_write", lambda r2=r2: r2.write_message(b""))
# An all-zero (low-order) ephemeral makes the DH output zero: rejected.
_, r2 = pair()
check("msg1_low_order_e", lambda: r2.read_message(bytes(32) + msg1[32:]))
i2, _ = pair()
check("write_too_long", lambda: i2.write_message(bytes(65535)))

# Transport: tamper, replay, reorder; a failed decryption leaves n unchanged.
i, r = pair()
r.read_message(i.write_message(b""))
i.read_message(r.write_message(b""))
i_send, i_recv = i.transport()
r_send, r_recv = r.transport()
c0 = i_send.encrypt_with_ad(b"", b"hello")
c1 = i_send.encrypt_with_ad(b"", b"world")
check("transport_tampered", lambda: r_recv.decrypt_with_ad(b"", flip(c0, 2)))
print("nonce_after_failure", r_recv.n)
check("transport_truncated", lambda: r_recv.decrypt_with_ad(b"", c0[:15]))
check("transport_reordered", lambda: r_recv.decrypt_with_ad(b"", c1))
check("transport_first", lambda: r_recv.decrypt_with_ad(b"", c0) == b"hello")
check("transport_replayed", lambda: r_recv.decrypt_with_ad(b"", c0))
check("transport_second", lambda: r_recv.decrypt_with_ad(b"", c1) == b"world")
ct_x = r_send.encrypt_with_ad(b"", b"x")
check("transport_back", lambda: i_recv.decrypt_with_ad(b"", ct_x) == b"x")
ct_b = r_send.encrypt_with_ad(b"b", b"x")
check("transport_wrong_ad", lambda: i_recv.decrypt_with_ad(b"a", ct_b))

# Nonce limits and Rekey.
cs = noise.CipherState(bytes(32))
cs.set_nonce(noise.MAX_NONCE - 1)
check("encrypt_last_nonce", lambda: len(cs.encrypt_with_ad(b"", b"x")) == 17)
check("encrypt_max_nonce", lambda: cs.encrypt_with_ad(b"", b"x"))
check("decrypt_max_nonce", lambda: cs.decrypt_with_ad(b"", bytes(17)))
print("nonce_bytes_1", noise.CipherState._nonce(0x0102030405060708).hex())
cs = noise.CipherState(bytes(range(32)))
cs.set_nonce(7)
cs.rekey()
print("rekey_key", cs.k.hex())
print("rekey_keeps_nonce", cs.n)
print("no_key_passthrough", noise.CipherState().encrypt_with_ad(b"ad", b"abc") == b"abc")

# Protocol names, keys and psks.
BAD_NAMES = (
    "Noise_KK_448_ChaChaPoly_SHA256",
    "Noise_KK_25519_AESGCM_SHA256",
    "Noise_ZZ_25519_ChaChaPoly_SHA256",
    "Noise_KKpsk9_25519_ChaChaPoly_SHA256",
    "Noise_KKfallback_25519_ChaChaPoly_SHA256",
    "Noise_KKpskx_25519_ChaChaPoly_SHA256",
    "KK",
)
for name in BAD_NAMES:
    check("name_" + name, lambda name=name: noise.HandshakeState(name, True, b"", s=I_S, rs=R_PUB))
check("kk_without_rs", lambda: noise.HandshakeState(KK, True, b"", s=I_S))
check("kk_without_s", lambda: noise.HandshakeState(KK, True, b"", rs=R_PUB))
check("bad_static_len", lambda: noise.HandshakeState(KK, True, b"", s=I_S[:31], rs=R_PUB))
NNPSK0 = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
NN = "Noise_NN_25519_ChaChaPoly_SHA256"
check("psk_missing", lambda: noise.HandshakeState(NNPSK0, True, b""))
check("psk_short", lambda: noise.HandshakeState(NNPSK0, True, b"", psks=[bytes(31)]))
check("psk_unexpected", lambda: noise.HandshakeState(NN, True, b"", psks=[bytes(32)]))
xx = noise.HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", True, b"")  # no s: fails at "-> s"
xr = noise.HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", False, b"", s=R_S)
xr.read_message(xx.write_message(b""))
xx.read_message(xr.write_message(b""))
check("xx_write_s_without_key", lambda: xx.write_message(b""))
# KK in noise.py, the other patterns in noise_patterns.py (loaded for the ones above).
print("pattern_count", 1 + len(noise_patterns.PATTERNS))

# A pre-generated ephemeral key pair gives the same message as the bare private key.
_, r_bare = pair()
_, r_pre = pair(re=(R_E, x25519.public_key(R_E)))
r_bare.read_message(msg1)
r_pre.read_message(msg1)
print("precomputed_e_same", r_bare.write_message(b"") == r_pre.write_message(b""))
# A cached static-static DH (ss) gives the same messages as computing it.
r_ss = noise.HandshakeState(KK, False, b"p", s=R_S, e=R_E, rs=I_PUB, ss=noise.static_dh(R_S, I_PUB))
r_ss.read_message(msg1)
_, r_plain = pair()
r_plain.read_message(msg1)
print("precomputed_ss_same", r_ss.write_message(b"") == r_plain.write_message(b""))
i_ss = noise.HandshakeState(KK, True, b"p", s=I_S, e=I_E, rs=R_PUB, ss=noise.static_dh(I_S, R_PUB))
print("precomputed_ss_initiator_same", i_ss.write_message(b"") == msg1)
i_bad = noise.HandshakeState(KK, True, b"p", s=I_S, e=I_E, rs=R_PUB, ss=bytes(32))
print("wrong_ss_differs", i_bad.write_message(b"") != msg1)
check("ss_short", lambda: noise.HandshakeState(KK, True, b"", s=I_S, rs=R_PUB, ss=bytes(31)))
kp = noise.generate_keypair()
print("generate_keypair", len(kp[0]) == 32 and x25519.public_key(kp[0]) == kp[1])
