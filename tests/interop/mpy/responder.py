# The device's half of the interop tests, on the real MicroPython unix port.
#
# Speaks length-prefixed frames (4-byte big-endian length, then the body) over
# stdin/stdout with the CPython test, and uses only the firmware's own modules:
# the session layer the device itself runs (homeseal.session.Responder) and the
# SPAKE2+ Verifier.
#
#   micropython responder.py noise <device s.priv> <controller s.pub> <prologue>
#     in:  SESSION payloads (PROTOCOL §6: kind 0x01 HANDSHAKE1, 0x03 TRANSPORT)
#          or test controls: 0xF1 n = send n pings, 0xFE = report counters
#     out: what the Responder answers: HANDSHAKE2, RESET 0x04 reason for every
#          rejection; every decrypted message is echoed back sealed (the first
#          one confirms a new session, §6)
#   micropython responder.py spake <Context> <idProver> <idVerifier> <w0> <L>
#     in:  shareP, then confirmP
#     out: b"V" shareV confirmV, then b"K" K_shared -- or b"E" <error text>
import json
import sys

from homeseal import ids, session, spake2plus, x25519

_IN = sys.stdin.buffer
_OUT = sys.stdout.buffer


def read_frame():
    head = _read_exact(4)
    if head is None:
        return None
    body = _read_exact(int.from_bytes(head, "big"))
    if body is None:
        raise ValueError("truncated frame")
    return body


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = _IN.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def write_frame(body):
    _OUT.write(len(body).to_bytes(4, "big") + body)


def run_noise(priv, controller_pub, prologue):
    pub = x25519.public_key(priv)
    device_id = ids.endpoint_id(pub)
    controller_id = ids.endpoint_id(controller_pub)
    if prologue != session.PROLOGUE + device_id + controller_id:
        raise ValueError("the test's prologue is not PROTOCOL.md §6's")
    logs = []
    # Every test here opens a session of its own, many within seconds: the
    # device's HANDSHAKE1 budget (L4, tested in tests/firmware) would drop them.
    session.HANDSHAKE_BURST = 1 << 20
    responder = session.Responder((priv, pub), device_id, logs.append)
    responder.pin(controller_id, controller_pub)
    stats = {"handshakes": 0, "decrypted": 0, "rejected": [], "no_session": 0}
    while True:
        # The device's quiet moment: the next handshake's ephemeral key and ss.
        while responder.precompute():
            pass
        body = read_frame()
        if body is None:
            return
        if body[:1] == b"\xf1":
            for i in range(body[1]):
                ping = ('{"t":"ping","id":' + str(i) + "}").encode()
                write_frame(responder.seal(ping))
            continue
        if body[:1] == b"\xfe":
            write_frame(json.dumps(stats).encode())
            continue
        # Every SESSION payload comes from the pinned controller's id: the
        # relay would give a stranger's frames its own id.
        reply, message, opened = responder.receive(controller_id, body)
        if opened:
            stats["handshakes"] += 1
        elif reply == b"\x04\x01":
            stats["no_session"] += 1
        elif reply is not None and reply[:2] in (b"\x04\x02", b"\x04\x06"):
            stats["rejected"].append(("handshake: " if reply[1] == 2 else "transport: ") + logs[-1])
        if reply is not None:
            write_frame(reply)
        if message is not None:
            stats["decrypted"] += 1
            write_frame(responder.seal(message))


def run_spake(context, id_prover, id_verifier, w0, L):
    verifier = spake2plus.Verifier(context, id_prover, id_verifier, w0, L)
    try:
        share_v, confirm_v = verifier.respond(read_frame())
    except ValueError as err:
        write_frame(b"E" + str(err).encode())
        return
    write_frame(b"V" + share_v + confirm_v)
    try:
        write_frame(b"K" + verifier.finish(read_frame()))
    except ValueError as err:
        write_frame(b"E" + str(err).encode())


def main():
    args = [bytes.fromhex(a) for a in sys.argv[2:]]
    if sys.argv[1] == "noise":
        run_noise(*args)
    else:
        run_spake(*args)


main()
