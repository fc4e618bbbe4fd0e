# SPAKE2+ Verifier against a test vector on the unix port. argv[1]: a JSON file with
# the RFC 9383 Appendix C fields (hex; Context/idProver/idVerifier as text).
# Prints every value the Verifier computes, as hex, in one JSON object.
import json
import sys

from homeseal import spake2plus

with open(sys.argv[1]) as f:
    v = json.load(f)
h = bytes.fromhex
context = v["Context"].encode()
id_p = v["idProver"].encode()
id_v = v["idVerifier"].encode()
y = int(v["y"], 16)
secret = spake2plus.precompute(h(v["w0"]), h(v["L"]))
shareV, Z, V = spake2plus.compute_points(secret, h(v["shareP"]), y)
K_main, K_confirmP, K_confirmV, K_shared = spake2plus.derive_keys(
    context, id_p, id_v, secret.w0_bytes, h(v["shareP"]), shareV, Z, V
)
out = {
    "shareV": shareV.hex(),
    "Z": Z.hex(),
    "V": V.hex(),
    "K_main": K_main.hex(),
    "K_confirmP": K_confirmP.hex(),
    "K_confirmV": K_confirmV.hex(),
}
# The same through the Verifier object, with w0 as an int this time.
ver = spake2plus.Verifier(context, id_p, id_v, int(v["w0"], 16), h(v["L"]))
sv, confirmV = ver.respond(h(v["shareP"]), _y=y)
out["respond_shareV"] = sv.hex()
out["confirmV"] = confirmV.hex()
out["K_shared"] = ver.finish(h(v["confirmP"])).hex()
out["Verifier_K_shared_from_derive"] = K_shared.hex()
print(json.dumps(out))
