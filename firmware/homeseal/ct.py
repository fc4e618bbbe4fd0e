"""Constant-time comparison of byte strings (MACs, tags, tokens, hashes).

`equal(a, b)` reads every byte of its inputs whatever their content: the loop runs
over the whole length and ORs the differences, with no data-dependent branch or early
exit. Lengths are public: unequal lengths return False after the same loop over `a`.
"""

import micropython

try:  # viper casts; only the CPython test shim exports them as names
    from micropython import ptr8
except ImportError:
    pass


@micropython.viper
def _diff(a: ptr8, b: ptr8, n: int) -> int:
    r = 0
    for i in range(n):
        r |= a[i] ^ b[i]
    return r


def equal(a, b):
    """True when the byte strings a and b are equal; time depends only on len(a)."""
    n = len(a)
    if n != len(b):
        _diff(a, a, n)
        return False
    return _diff(a, b, n) == 0
