# Every cacophony *_25519_ChaChaPoly_SHA256 vector on the unix port. argv[1]: the vector file.
# Initiator and responder are both ours; each handshake message must equal the vector's
# ciphertext and decrypt to its payload, then the transport messages (alternating after
# the handshake; initiator -> responder only for one-way patterns) and the handshake hash.
# Prints "PASS name" or "FAIL name: reason" per vector, then "total N".
import json
import sys

from homeseal import noise

with open(sys.argv[1]) as f:
    vectors = json.load(f)["vectors"]


def h(v, key):
    s = v.get(key)
    return None if s is None else bytes.fromhex(s)


def run(v):
    name = v["protocol_name"]
    init = noise.HandshakeState(
        name,
        True,
        h(v, "init_prologue"),
        s=h(v, "init_static"),
        e=h(v, "init_ephemeral"),
        rs=h(v, "init_remote_static"),
        psks=[bytes.fromhex(p) for p in v.get("init_psks", ())],
    )
    resp = noise.HandshakeState(
        name,
        False,
        h(v, "resp_prologue"),
        s=h(v, "resp_static"),
        e=h(v, "resp_ephemeral"),
        rs=h(v, "resp_remote_static"),
        psks=[bytes.fromhex(p) for p in v.get("resp_psks", ())],
    )
    msgs = v["messages"]
    i = 0
    while not init.finished:
        writer, reader = (init, resp) if i % 2 == 0 else (resp, init)
        payload = bytes.fromhex(msgs[i]["payload"])
        ct = writer.write_message(payload)
        if ct.hex() != msgs[i]["ciphertext"]:
            return f"handshake message {i} ciphertext"
        if reader.read_message(ct) != payload:
            return f"handshake message {i} payload"
        i += 1
    if not resp.finished:
        return "responder not finished"
    hh = v["handshake_hash"]
    if init.get_handshake_hash().hex() != hh or resp.get_handshake_hash().hex() != hh:
        return "handshake hash"
    i_send, i_recv = init.transport()
    r_send, r_recv = resp.transport()
    one_way = i_recv is None
    for j in range(i, len(msgs)):
        send, recv = (i_send, r_recv) if one_way or j % 2 == 0 else (r_send, i_recv)
        payload = bytes.fromhex(msgs[j]["payload"])
        ct = send.encrypt_with_ad(b"", payload)
        if ct.hex() != msgs[j]["ciphertext"]:
            return f"transport message {j} ciphertext"
        if recv.decrypt_with_ad(b"", ct) != payload:
            return f"transport message {j} payload"
    return None


for v in vectors:
    try:
        err = run(v)
    except Exception as e:  # reported, and the test fails on it
        err = type(e).__name__ + ": " + str(e)
    print(("FAIL " + v["protocol_name"] + ": " + err) if err else ("PASS " + v["protocol_name"]))
print("total", len(vectors))
