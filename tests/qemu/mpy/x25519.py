# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (scalar, u). Prints the shared secret and what dh() made of it: one
# ladder per case, a second only when dh() refuses an all-zero result.
from homeseal import x25519

for k, u in cases():
    try:
        out = x25519.dh(k, u)
        verdict = "dh-ok"
    except ValueError as e:
        out = x25519.x25519(k, u)
        verdict = err(e)
    print(hx(out) + "|" + verdict)
