# Endpoint ids (PROTOCOL.md §1): SHA-256(s.pub)[0:10], written for humans as
# lowercase RFC 4648 base32 in four dash-joined groups of four.
import hashlib

_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def endpoint_id(pub):
    return hashlib.sha256(pub).digest()[:10]


def b32(data):
    # 10 bytes = 80 bits = exactly 16 characters, no padding needed.
    n = int.from_bytes(data, "big")
    bits = len(data) * 8
    out = []
    for shift in range(bits - 5, -1, -5):
        out.append(_B32[(n >> shift) & 31])
    return "".join(out)


def format_id(eid):
    s = b32(eid)
    return "-".join(s[i : i + 4] for i in range(0, 16, 4))
