# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# PROTOCOL.md Appendix A's pairing (revision 2), the device's side, from the
# example's messages. One case: (label, controller id, device id, request,
# response, w0, L, shareP, y, confirmP, sealed controller s.pub, device s.pub).
# The Context is built here, on the port, as pairing_window.py builds it:
# label ‖ controller id ‖ SHA-256(PBKDF_PARAM_REQUEST ‖ PBKDF_PARAM_RESPONSE);
# idProver is empty, idVerifier the device id. One output line per value.
from hashlib import sha256

from homeseal import chachapoly, kdf, spake2plus

for case in cases():
    label, ctl_id, dev_id, request, response, w0, L, shareP, y, confirmP, sealed, dev_pub = case
    context = label + ctl_id + sha256(request + response).digest()
    print("context " + hx(context))
    ver = spake2plus.Verifier(context, b"", dev_id, w0, L)
    shareV, confirmV = ver.respond(shareP, int.from_bytes(y, "big"))
    print("shareV " + hx(shareV))
    print("confirmV " + hx(confirmV))
    k_shared = ver.finish(confirmP)
    print("K_shared " + hx(k_shared))
    keys = kdf.hkdf(b"", k_shared, b"HomeSeal v1 pairing keys", 64)
    ad = ctl_id + dev_id
    print("controller s.pub " + hx(chachapoly.decrypt(keys[0:32], bytes(12), ad, sealed)))
    print("sealed device s.pub " + hx(chachapoly.encrypt(keys[32:64], bytes(12), ad, dev_pub)))
    # A confirmP one bit off: the device refuses it.
    ver = spake2plus.Verifier(context, b"", dev_id, w0, L)
    ver.respond(shareP, int.from_bytes(y, "big"))
    try:
        ver.finish(bytes((confirmP[0] ^ 1,)) + confirmP[1:])
        print("wrong confirmP accepted")
    except ValueError as e:
        print("wrong confirmP " + err(e))
