# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (key, nonce, ad, msg, ct_and_tag). Encrypts msg and decrypts ct_and_tag;
# decryption failures must be ValueError, never a crash or partial plaintext.
from homeseal import chachapoly

for key, nonce, ad, msg, sealed in cases():
    try:
        enc = hx(chachapoly.encrypt(key, nonce, ad, msg))
    except ValueError as e:
        enc = err(e)
    try:
        dec = hx(chachapoly.decrypt(key, nonce, ad, sealed))
    except ValueError as e:
        dec = err(e)
    print(enc + "|" + dec)
