# ruff: noqa: F821 (cases, hx and err come from mpy/cases.py, prepended by run_both)
# Cases: (kind, context, idProver, idVerifier, w0, L, shareP, y, confirmP).
# ok: respond + finish; badconfirm: a wrong confirmP, then finish() again;
# badshare: respond to an invalid shareP. One line per case.
from homeseal import spake2plus

for _kind, context, id_p, id_v, w0, L, shareP, y, confirmP in cases():
    ver = spake2plus.Verifier(context, id_p, id_v, w0, L)
    try:
        shareV, confirmV = ver.respond(shareP, int.from_bytes(y, "big"))
    except ValueError as e:
        try:
            ver.finish(confirmP)
            after = "finished"
        except RuntimeError as e2:
            after = err(e2)
        print(err(e) + "|" + after)
        continue
    line = hx(shareV) + "|" + hx(confirmV)
    try:
        line += "|" + hx(ver.finish(confirmP))
    except ValueError as e:
        line += "|" + err(e)
    try:
        ver.finish(confirmP)
        line += "|again"
    except RuntimeError as e:
        line += "|" + err(e)
    print(line)
