# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (kind, key, counter, nonce, data): the ChaCha20 block and stream
# functions with an explicit 32-bit counter, and raw Poly1305.
from homeseal import chachapoly

for kind, key, counter, nonce, data in cases():
    if kind == b"block":
        print(hx(chachapoly.chacha20_block(key, int(counter), nonce)))
    elif kind == b"xor":
        print(hx(chachapoly.chacha20_xor(key, int(counter), nonce, data)))
    else:
        print(hx(chachapoly.poly1305(key, data)))
