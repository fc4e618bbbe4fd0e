# ruff: noqa: F821 (cases() comes from the cases.py prelude)
# ECDSA P-256 / SHA-256 verification (homeseal/ecdsa.py): per case (public key,
# message, r || s) one digit, 1 for a valid signature, 0 otherwise; one line.
from homeseal import ecdsa

out = bytearray()
for pub, msg, sig in cases():
    out.append(0x31 if ecdsa.verify(pub, msg, sig) else 0x30)
print(out.decode())
