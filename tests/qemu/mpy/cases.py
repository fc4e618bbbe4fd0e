# ruff: noqa: F821 (DATA is defined by the prelude run_both puts first)
# Prepended to every vector script (unix and QEMU alike). DATA is the case blob:
# count (2) ‖ fields per case (1) ‖ per field: length (2, big-endian) ‖ bytes.
# On the board DATA is RAM the blob was loaded into, read in place.
from binascii import hexlify


def cases():
    mv = memoryview(DATA)
    n = (mv[0] << 8) | mv[1]
    k = mv[2]
    off = 3
    for _ in range(n):
        fields = []
        for _ in range(k):
            ln = (mv[off] << 8) | mv[off + 1]
            off += 2
            fields.append(bytes(mv[off : off + ln]))
            off += ln
        yield fields


def hx(b):
    return hexlify(b).decode()


def err(e):
    # Exception class only: messages may differ between code paths, classes may not.
    return "ERR:" + type(e).__name__
