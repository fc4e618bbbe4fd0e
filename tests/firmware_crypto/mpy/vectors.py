# Runs one Wycheproof vector file through the firmware primitives on MicroPython.
# usage: vectors.py KIND PATH   (KIND: x25519 | chachapoly | hkdf | hmac | pbkdf2)
# Prints one line per case: "tcId field..." ; the pytest side decides pass/fail.
import json
import sys
from binascii import hexlify, unhexlify

from homeseal import chachapoly, ct, kdf, x25519


def hx(b):
    return hexlify(b).decode()


def run(kind, t):
    g = unhexlify
    if kind == "x25519":
        out = hx(x25519.x25519(g(t["private"]), g(t["public"])))
        # dh() costs another scalar multiplication: run it on every all-zero case and
        # a sample of the others
        if int(t["shared"], 16) and t["tcId"] % 8:
            return out + " skipped"
        try:
            x25519.dh(g(t["private"]), g(t["public"]))
            dh = "ok"
        except ValueError:
            dh = "rejected"
        return out + " " + dh
    if kind == "chachapoly":
        key, iv, aad, msg = g(t["key"]), g(t["iv"]), g(t["aad"]), g(t["msg"])
        try:
            enc = hx(chachapoly.encrypt(key, iv, aad, msg))
        except ValueError:
            enc = "ValueError"
        try:
            dec = hx(chachapoly.decrypt(key, iv, aad, g(t["ct"] + t["tag"]))) or "-"
        except ValueError:
            dec = "ValueError"
        return enc + " " + dec
    if kind == "hkdf":
        try:
            return hx(kdf.hkdf(g(t["salt"]), g(t["ikm"]), g(t["info"]), t["size"]))
        except ValueError:
            return "ValueError"
    if kind == "hmac":
        tag = g(t["tag"])
        full = kdf.hmac_sha256(g(t["key"]), g(t["msg"]))
        return hx(full) + " " + ("match" if ct.equal(full[: len(tag)], tag) else "mismatch")
    if kind == "pbkdf2":
        return hx(
            kdf.pbkdf2_hmac_sha256(g(t["password"]), g(t["salt"]), t["iterationCount"], t["dkLen"])
        )
    raise ValueError(kind)


def main():
    kind, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        data = json.load(f)
    for group in data["testGroups"]:
        for t in group["tests"]:
            print(t["tcId"], run(kind, t))


main()
