# Generic runner: reads a JSON list of [op, arg, ...] from stdin and prints one line per
# call: the hex result, "true"/"false" for booleans, or the exception's class name.
# Hex strings are bytes arguments; integers stay integers. An op named "mv_<op>" passes
# every bytes argument as a memoryview of a bytearray, offset by one byte so that the
# buffer is not word aligned.
import json
import sys
from binascii import hexlify, unhexlify

from homeseal import chachapoly, ct, kdf, x25519


def x25519_iter(k, u, n):
    # RFC 7748 section 5.2: k, u = X25519(k, u), k
    for _ in range(n):
        k, u = x25519.x25519(k, u), k
    return k


def generate_and_agree():
    # two fresh key pairs from os.urandom must agree on the shared secret
    a, b = x25519.generate_private(), x25519.generate_private()
    return a != b and x25519.dh(a, x25519.public_key(b)) == x25519.dh(b, x25519.public_key(a))


OPS = {
    "generate_and_agree": generate_and_agree,
    "x25519": x25519.x25519,
    "x25519_iter": x25519_iter,
    "public_key": x25519.public_key,
    "dh": x25519.dh,
    "chacha20_block": chachapoly.chacha20_block,
    "chacha20_xor": chachapoly.chacha20_xor,
    "poly1305": chachapoly.poly1305,
    "encrypt": chachapoly.encrypt,
    "decrypt": chachapoly.decrypt,
    "hmac": kdf.hmac_sha256,
    "hkdf_extract": kdf.hkdf_extract,
    "hkdf_expand": kdf.hkdf_expand,
    "hkdf": kdf.hkdf,
    "pbkdf2": kdf.pbkdf2_hmac_sha256,
    "ct_equal": ct.equal,
}


def arg(a):
    return unhexlify(a) if isinstance(a, str) else a


def unaligned_view(a):
    if not isinstance(a, bytes):
        return a
    return memoryview(bytearray(b"\x00" + a))[1:]


def main():
    for call in json.load(sys.stdin):
        try:
            op, args = call[0], [arg(a) for a in call[1:]]
            if op.startswith("mv_"):
                op, args = op[3:], [unaligned_view(a) for a in args]
            r = OPS[op](*args)
            if isinstance(r, bool):
                print("true" if r else "false")
            else:
                print(hexlify(r).decode() or "-")
        except Exception as e:  # report, the test decides
            print(type(e).__name__)


main()
