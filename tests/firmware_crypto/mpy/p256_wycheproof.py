# Wycheproof ECDH secp256r1 (ecpoint encoding) on the unix port. argv[1]: the vector file.
# For each test: decode the public point (our wire format: uncompressed only) and,
# when it decodes, the x-coordinate of private * public. Prints {tcId: hex or "rejected"}.
import json
import sys

from homeseal import p256

with open(sys.argv[1]) as f:
    data = json.load(f)
out = {}
for group in data["testGroups"]:
    for t in group["tests"]:
        try:
            shared = p256.ecdh_x(int(t["private"], 16), bytes.fromhex(t["public"]))
            out[str(t["tcId"])] = shared.hex()
        except ValueError:
            out[str(t["tcId"])] = "rejected"
print(json.dumps(out))
