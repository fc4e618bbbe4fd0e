# One SPAKE2+ attempt with a random y, driven over stdin/stdout by a CPython Prover.
# argv: context, idProver, idVerifier, w0, L (hex). stdin: shareP, then confirmP (hex lines).
# stdout: "shareV confirmV", then "K_shared <hex>" or "ValueError".
import sys

from homeseal import spake2plus

h = bytes.fromhex
ctx, id_p, id_v, w0, L = (h(a) for a in sys.argv[1:6])
ver = spake2plus.Verifier(ctx, id_p, id_v, w0, L)
shareV, confirmV = ver.respond(h(sys.stdin.readline().strip()))
print(shareV.hex(), confirmV.hex())
try:
    print("K_shared", ver.finish(h(sys.stdin.readline().strip())).hex())
except ValueError:
    print("ValueError")
