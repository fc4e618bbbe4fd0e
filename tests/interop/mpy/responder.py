# The device's half of the interop tests, on the real MicroPython unix port.
#
# Speaks length-prefixed frames (4-byte big-endian length, then the body) over
# stdin/stdout with the CPython test, and uses only the firmware's own modules.
#
#   micropython responder.py noise <device s.priv> <controller s.pub> <prologue>
#     in:  SESSION payloads (PROTOCOL §6: kind 0x01 HANDSHAKE1, 0x03 TRANSPORT)
#          or test controls: 0xF1 n = send n pings, 0xFE = report counters
#     out: HANDSHAKE2, TRANSPORT (every decrypted message echoed back under the
#          device's key), RESET 0x04 reason [s.pub] for every rejection
#   micropython responder.py spake <Context> <idProver> <idVerifier> <w0> <L>
#     in:  shareP, then confirmP
#     out: b"V" shareV confirmV, then b"K" K_shared -- or b"E" <error text>
import json
import sys

from homeseal import noise, spake2plus, x25519

_IN = sys.stdin.buffer
_OUT = sys.stdout.buffer
KK = "Noise_KK_25519_ChaChaPoly_SHA256"


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
    send = recv = None
    stats = {"handshakes": 0, "decrypted": 0, "rejected": [], "no_session": 0}
    while True:
        body = read_frame()
        if body is None:
            return
        kind = body[0]
        if kind == 0x01:
            send = recv = None  # a new HANDSHAKE1 replaces the session
            hs = noise.HandshakeState(KK, False, prologue, s=priv, rs=controller_pub)
            try:
                if len(body) != 49 or hs.read_message(body[1:]) != b"":
                    raise ValueError("bad HANDSHAKE1")
                reply = hs.write_message(b"")
            except ValueError as err:
                stats["rejected"].append("handshake: " + str(err))
                write_frame(b"\x04\x02" + pub)
                continue
            send, recv = hs.transport()
            stats["handshakes"] += 1
            write_frame(b"\x02" + reply)
        elif kind == 0x03:
            if recv is None:
                stats["no_session"] += 1
                write_frame(b"\x04\x01")
                continue
            try:
                plaintext = recv.decrypt_with_ad(b"", body[1:])
            except ValueError as err:
                send = recv = None  # any failure ends the session (PROTOCOL §6)
                stats["rejected"].append("transport: " + str(err))
                write_frame(b"\x04\x06")
                continue
            stats["decrypted"] += 1
            write_frame(b"\x03" + send.encrypt_with_ad(b"", plaintext))
        elif kind == 0xF1:
            for i in range(body[1]):
                ping = ('{"t":"ping","id":' + str(i) + "}").encode()
                write_frame(b"\x03" + send.encrypt_with_ad(b"", ping))
        elif kind == 0xFE:
            write_frame(json.dumps(stats).encode())
        else:
            write_frame(b"\x04\x05")


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
