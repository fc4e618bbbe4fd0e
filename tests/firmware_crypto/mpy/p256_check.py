# P-256 arithmetic on the MicroPython unix port. argv[1]: a JSON file with
#   scalars: [hex]      -> k*G by the comb (mul_base) and by wNAF (mul)
#   base7: [hex]        -> k*(7G) by a Comb of 7G with 4 and 5 teeth
#   decode: [hex]       -> decode_point: "ok:<re-encoding>" or "ValueError"
#   double_add: hex     -> P + P, P + (-P), 2P - P computed with add/add_affine
# Prints one JSON object with the results (hex), for the CPython test to compare.
import json
import sys

from homeseal import p256

with open(sys.argv[1]) as f:
    req = json.load(f)


def enc(jac):
    if not jac[2]:
        return "identity"
    return p256.encode_point(p256.to_affine(jac)).hex()


out = {"mul_base": [], "mul": [], "comb4": [], "comb5": [], "decode": []}
for h in req["scalars"]:
    k = int(h, 16)
    out["mul_base"].append(enc(p256.mul_base(k)))
    out["mul"].append(enc(p256.mul(k, p256.G)))
g7 = p256.to_affine(p256.mul(7, p256.G))
c4 = p256.Comb(g7, 4)
c5 = p256.Comb(g7, 5)
for h in req["base7"]:
    k = int(h, 16)
    out["comb4"].append(enc(c4.mul(k)))
    out["comb5"].append(enc(c5.mul(k)))
for h in req["decode"]:
    try:
        out["decode"].append("ok:" + p256.encode_point(p256.decode_point(bytes.fromhex(h))).hex())
    except ValueError:
        out["decode"].append("ValueError")
pt = p256.decode_point(bytes.fromhex(req["double_add"]))
jac = (pt[0], pt[1], 1)
neg = p256.negate(pt)
two = p256.double(*jac)
out["p_plus_p"] = enc(p256.add(*jac, *jac))
out["p_plus_p_affine"] = enc(p256.add_affine(*jac, *pt))
out["p_minus_p"] = enc(p256.add(*jac, *p256.negate(jac)))
out["p_minus_p_affine"] = enc(p256.add_affine(*jac, *neg))
out["two_minus_p"] = enc(p256.add_affine(*two, *neg))
out["identity_plus_p"] = enc(p256.add_affine(*p256.IDENTITY, *pt))
# 2P in two Jacobian representations (different Z): the add must notice they are equal.
two_b = p256.add(*p256.mul(3, pt), *p256.negate(jac))  # 3P - P
out["two_plus_two_other_z"] = enc(p256.add(*two, *two_b))
out["two_minus_two_other_z"] = enc(p256.add(*two, *p256.negate(two_b)))
out["two_z_differ"] = two[2] != two_b[2] or two[0] != two_b[0]
out["M_on_curve"] = p256.encode_point(p256.decode_point(p256.encode_point(p256.M))).hex()
out["N_on_curve"] = p256.encode_point(p256.decode_point(p256.encode_point(p256.N))).hex()
try:
    p256.to_affine(p256.IDENTITY)
    out["identity_to_affine"] = "no error"
except ValueError:
    out["identity_to_affine"] = "ValueError"
out["order_times_g"] = enc(p256.mul(p256.ORDER, p256.G))
print(json.dumps(out))
