# SPAKE2+ Verifier misuse and bad input on the unix port. argv[1]: vector JSON (as spake_vector).
# Prints "name outcome" lines; outcome is "ok" or the exception's class name.
import json
import sys

from homeseal import p256, spake2plus

with open(sys.argv[1]) as f:
    v = json.load(f)
h = bytes.fromhex
CTX = v["Context"].encode()
IDP = v["idProver"].encode()
IDV = v["idVerifier"].encode()
W0 = h(v["w0"])
L = h(v["L"])
SHARE_P = h(v["shareP"])
CONFIRM_P = h(v["confirmP"])
Y = int(v["y"], 16)


def verifier():
    return spake2plus.Verifier(CTX, IDP, IDV, W0, L)


def check(name, fn):
    try:
        fn()
        print(name, "ok")
    except Exception as e:  # the outcome is what is printed
        print(name, type(e).__name__)


def flip(b, i):
    b = bytearray(b)
    b[i] ^= 1
    return bytes(b)


x = SHARE_P[1:33]
y = SHARE_P[33:]
pp = p256.FIELD_P.to_bytes(32, "big")
bad_points = {
    "short": SHARE_P[:64],
    "long": SHARE_P + b"\x00",
    "empty": b"",
    "identity_byte": b"\x00",
    "zero_point": bytes(65),
    "compressed": b"\x02" + x,
    "prefix_06": b"\x06" + x + y,
    "off_curve": flip(SHARE_P, 64),
    "x_eq_p": b"\x04" + pp + y,
    "y_eq_p": b"\x04" + x + pp,
}
for name, pt in bad_points.items():
    check("shareP_" + name, lambda pt=pt: verifier().respond(pt))

# A failed respond() spends the attempt.
ver = verifier()
check("respond_bad_then", lambda: ver.respond(b"\x00"))
check("respond_after_failure", lambda: ver.respond(SHARE_P))

# shareP = w0*M makes shareP - w0*M the identity, so Z would be the identity.
w0M = p256.encode_point(p256.to_affine(p256.mul(int(v["w0"], 16), p256.M)))
check("shareP_w0M_identity_Z", lambda: verifier().respond(w0M))

ver = verifier()
check("finish_before_respond", lambda: ver.finish(CONFIRM_P))
ver = verifier()
check("respond_once", lambda: ver.respond(SHARE_P, _y=Y))
check("respond_twice", lambda: ver.respond(SHARE_P, _y=Y))
check("finish_right", lambda: ver.finish(CONFIRM_P))
check("finish_twice", lambda: ver.finish(CONFIRM_P))

for name, cp in (
    ("flipped", flip(CONFIRM_P, 31)),
    ("short", CONFIRM_P[:31]),
    ("empty", b""),
    ("long", CONFIRM_P + b"\x00"),
):
    ver = verifier()
    ver.respond(SHARE_P, _y=Y)
    check("finish_wrong_" + name, lambda ver=ver, cp=cp: ver.finish(cp))
    check("finish_after_wrong_" + name, lambda ver=ver: ver.finish(CONFIRM_P))

check("w0_zero", lambda: spake2plus.Verifier(CTX, IDP, IDV, 0, L))
check("w0_order", lambda: spake2plus.Verifier(CTX, IDP, IDV, p256.ORDER, L))
check("w0_31_bytes", lambda: spake2plus.Verifier(CTX, IDP, IDV, W0[1:], L))
check("L_off_curve", lambda: spake2plus.Verifier(CTX, IDP, IDV, W0, flip(L, 64)))

ys = [spake2plus.random_scalar() for _ in range(4)]
print("random_scalar_in_range", all(0 < k < p256.ORDER for k in ys))
print("random_scalar_distinct", len(set(ys)) == 4)
# Two Verifiers with random y answer the same shareP differently.
a = verifier().respond(SHARE_P)
b = verifier().respond(SHARE_P)
print("random_shareV_differ", a[0] != b[0] and a[1] != b[1])

# forget() drops the cached secret and G's comb; a later attempt rebuilds them.
spake2plus.forget()
print("forget_clears", spake2plus._cached is None and p256._base is None)
ver = verifier()
print("after_forget_vector", ver.respond(SHARE_P, _y=Y)[1].hex() == v["confirmV"])
