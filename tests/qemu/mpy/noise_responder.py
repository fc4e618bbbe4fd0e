# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# A Noise responder driven by steps (kind, a, b, c, d, e, f), one output line each:
#   hs: protocol, prologue, s (private), e (private), rs, psks (concatenated)
#   read: handshake message -> payload;  write: payload -> message (then "|" h)
#   recv: transport message -> plaintext;  send: plaintext -> transport message
#   setn / rekey: a names the CipherState (send or recv); setn's b is the nonce
from homeseal import noise

hs = send = recv = None
for kind, a, b, c, d, e, f in cases():
    try:
        if kind == b"hs":
            psks = [f[i : i + 32] for i in range(0, len(f), 32)]
            hs = noise.HandshakeState(a.decode(), False, b, s=c, e=d, rs=e, psks=psks)
            print("hs")
        elif kind == b"read":
            print(hx(hs.read_message(a)))
        elif kind == b"write":
            line = hx(hs.write_message(a))
            if hs.finished:
                send, recv = hs.transport()
                line += "|" + hx(hs.get_handshake_hash())
            print(line)
        elif kind == b"recv":
            print(hx(recv.decrypt_with_ad(b"", a)))
        elif kind == b"send":
            print(hx(send.encrypt_with_ad(b"", a)))
        elif kind == b"setn":
            (send if a == b"send" else recv).set_nonce(int(b))
            print("n")
        else:
            (send if a == b"send" else recv).rekey()
            print("rekey")
    except (ValueError, RuntimeError) as ex:
        print(err(ex))
