# Reproduce docs/examples/protocol_v1.json (PROTOCOL.md Appendix A) with the
# firmware's own modules, the device's way round. argv: path of the JSON, an
# empty state directory.
# Prints one "ok <name>" line per check; any mismatch raises (non-zero exit).
import json
import sys
from hashlib import sha256

from homeseal import (
    chachapoly,
    envelope,
    kdf,
    noise,
    pairing,
    pairing_window,
    relay,
    spake2plus,
    store,
    x25519,
)

h = bytes.fromhex
with open(sys.argv[1]) as f:
    ex = json.load(f)
keys = ex["keys"]
dev_priv = h(keys["device_static_priv"])
dev_pub = h(keys["device_static_pub"])
ctl_pub = h(keys["controller_static_pub"])
ctl_id = h(keys["controller_id"])
dev_id = h(keys["device_id"])


def check(name, got, want):
    if got != want:
        raise AssertionError(name + ": " + got.hex() + " != " + want.hex())
    print("ok", name)


check("device s.pub", x25519.public_key(dev_priv), dev_pub)

# §4 relay authentication, device role.
auth = ex["relay_auth"]
relay_pub, nonce = h(auth["relay_static_pub"]), h(auth["nonce"])
a = auth["device"]
label = b"HomeSeal v1 relay auth"
dh = x25519.dh(dev_priv, relay_pub)
check("relay dh", dh, h(a["dh"]))
k = kdf.hkdf(nonce, dh, label, 32)
check("relay k", k, h(a["k"]))
mac = kdf.hmac_sha256(k, label + b"\x01" + relay_pub + dev_pub + nonce)
check("relay mac", mac, h(a["mac"]))
check("AUTH_RESPONSE", b"\x02" + dev_id + dev_pub + mac, h(a["auth_response_frame"]))
# The firmware's own relay link derives the same response and k_ctl (§4.1), and
# authenticates its first CLAIM (seq 1) with it.
resp, k_ctl = relay.auth_response(dev_priv, dev_pub, relay_pub + nonce, relay_pub)
check("relay.auth_response", resp, dev_pub + mac)
check("k_ctl", k_ctl, h(a["k_ctl"]))
c = a["claim"]
check("CLAIM mac", kdf.hmac_sha256(k_ctl, h(c["mac_input"])), h(c["mac"]))
claim = b"\x30" + ctl_id + relay.control_payload(k_ctl, 0x30, ctl_id, c["seq"])
check("CLAIM", claim, h(c["frame"]))

# §5 pairing, Verifier side with the example's y. Context = label ‖ controller
# id ‖ SHA-256(PBKDF_PARAM_REQUEST ‖ PBKDF_PARAM_RESPONSE) (revision 2), idProver
# empty, idVerifier the device id; the firmware's own pairing_window builds it.
p = ex["pairing"]
if ex.get("revision") != 2:
    raise AssertionError("protocol_v1.json is not revision 2")
msgs = {m["name"]: h(m["body"]) for m in p["messages"]}
request, response = msgs["PBKDF_PARAM_REQUEST"], msgs["PBKDF_PARAM_RESPONSE"]
check("params_hash", sha256(request + response).digest(), h(p["params_hash"]))
context = pairing_window.CONTEXT + ctl_id + sha256(request + response).digest()
check("context", context, h(p["context"]))
check("idProver", b"", h(p["idProver"]))
check("idVerifier", dev_id, h(p["idVerifier"]))
ver = spake2plus.Verifier(context, b"", dev_id, h(p["w0"]), h(p["L"]))
share_v, confirm_v = ver.respond(h(p["shareP"]), int(p["y"], 16))
check("shareV", share_v, h(p["shareV"]))
check("confirmV", confirm_v, h(p["confirmV"]))
k_shared = ver.finish(h(p["confirmP"]))
check("K_shared", k_shared, h(p["K_shared"]))
okm = kdf.hkdf(b"", k_shared, b"HomeSeal v1 pairing keys", 64)
check("k_p", okm[:32], h(p["k_p"]))
check("k_v", okm[32:], h(p["k_v"]))
ad = ctl_id + dev_id
zero = bytes(12)
check(
    "unsealed controller s.pub",
    chachapoly.decrypt(okm[:32], zero, ad, h(p["sealed_controller_pub"])),
    ctl_pub,
)
check(
    "sealed device s.pub",
    chachapoly.encrypt(okm[32:], zero, ad, dev_pub),
    h(p["sealed_device_pub"]),
)

# The same exchange through the device's own pairing code (pairing.py and
# pairing_window.py, a state directory in argv[2]), y fixed to the example's:
# every message the device sends is the example's, byte for byte.
st = store.Store(sys.argv[2])
st.write(
    store.PROVISIONING,
    {"version": 1, "w0": p["w0"], "L": p["L"], "salt": p["salt"], "iterations": p["iterations"]},
)
spake2plus.random_scalar = lambda: int(p["y"], 16)


def device_pairing():
    pinned = []
    pr = pairing.Pairing(st, dev_id, dev_pub, 0, lambda c, k: pinned.append((c, k)), lambda m: None)
    pr.open_window()
    return pr, pinned


def answer(pr, ftype, body):
    return [(f[0], f[1], bytes(f[2])) for f in pr.handle(ftype, ctl_id, memoryview(body), False)]


pr, pinned = device_pairing()
check("PBKDF_PARAM_RESPONSE", answer(pr, envelope.PAIR_START, request)[0][2], response)
check("PAKE2", answer(pr, envelope.PAIR, msgs["PAKE1"])[0][2], msgs["PAKE2"])
done, claim_frame = answer(pr, envelope.PAIR, msgs["PAKE3"])
check("PAIR_DONE", done[2], msgs["PAIR_DONE"])
check("pinned", pinned[0][0] + pinned[0][1], ctl_id + ctl_pub)
check("CLAIM after PAIR_DONE", bytes((claim_frame[0],)) + claim_frame[1], b"\x30" + ctl_id)
wrong = p["wrong_code_error"]
pr, _ = device_pairing()
answer(pr, envelope.PAIR_START, request)
answer(pr, envelope.PAIR, msgs["PAKE1"])
bad_confirm = msgs["PAKE3"][:1] + bytes((msgs["PAKE3"][1] ^ 1,)) + msgs["PAKE3"][2:]
check("PAIR_ERROR wrong_code", answer(pr, envelope.PAIR, bad_confirm)[0][2], h(wrong["body"]))

# §6 session, responder side with the example's ephemeral.
s = ex["session"]
hs = noise.HandshakeState(
    s["protocol_name"],
    False,
    h(s["prologue"]),
    s=dev_priv,
    e=h(s["device_ephemeral_priv"]),
    rs=ctl_pub,
)
check("HANDSHAKE1 payload", hs.read_message(h(s["handshake1"])[1:]), b"")
check("HANDSHAKE2", b"\x02" + hs.write_message(b""), h(s["handshake2"]))
check("handshake hash", hs.get_handshake_hash(), h(s["handshake_hash"]))
send, recv = hs.transport()
for m in s["transport"]:
    payload = h(m["payload"])
    if m["from"] == "device":
        check(
            "transport nonce " + str(m["nonce"]) + " from device",
            b"\x03" + send.encrypt_with_ad(b"", h(m["plaintext"])),
            payload,
        )
    else:
        check(
            "transport nonce " + str(m["nonce"]) + " from controller",
            recv.decrypt_with_ad(b"", payload[1:]),
            h(m["plaintext"]),
        )
print("done")
