# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (kind, a, b, c, d). hmac: key, msg, tag; hkdf: salt, ikm, info, size;
# pbkdf2: password, salt, iterations, dklen. One output line per case.
from homeseal import ct, kdf

for kind, a, b, c, d in cases():
    try:
        if kind == b"hmac":
            mac = kdf.hmac_sha256(a, b)
            print(hx(mac) + "|" + str(int(ct.equal(mac[: len(c)], c))))
        elif kind == b"hkdf":
            print(hx(kdf.hkdf(a, b, c, int(d))))
        else:
            print(hx(kdf.pbkdf2_hmac_sha256(a, b, int(c), int(d))))
    except ValueError as e:
        print(err(e))
