# The device's state at boot (firmware/README.md "State files"): the key pair,
# the pinned controller and the failed-attempt counter, read and checked once;
# the first boot; the adoption of the files the provisioning tool or older
# firmware wrote; what a lost or corrupt record means; and the button-less
# device's way back from a lockout. device.py imports this module at boot and
# unloads it right after.
#
# From the first boot (or the adoption) on, identity.json carries
# "state_files": true and attempts.json and pairing.json always exist (unpaired
# is {"controller_id": null}): store.py never loses a record to a power cut, so
# a missing one, or one that is corrupt or out of range, was lost otherwise and
# fails closed. The device records a lockout (the counter at the limit, and
# unpaired if the pairing record was the one lost): no window, until a long
# press of the pairing button or, without a button, the next power-on.
import binascii

from homeseal import ids, store, x25519
from homeseal.pairing import MAX_FAILED

_UNPAIRED = {"controller_id": None}


def _hex(b):
    return binascii.hexlify(b).decode()


def _read(st, name):
    """(record or None, lost): lost when slots exist and none is valid."""
    try:
        return st.read(name), False
    except store.StoreError:
        return None, True


def _keypair(rec):
    try:
        priv = binascii.unhexlify(rec["private_key"])
        pub = binascii.unhexlify(rec["public_key"])
        if len(priv) == 32 and x25519.public_key(priv) == pub:
            return priv, pub
    except (KeyError, ValueError, TypeError):
        pass
    raise store.StoreError(store.IDENTITY + " is corrupt (private and public key do not match)")


def _controller(rec):
    """(controller id, key, claimed) of a valid paired record, else None."""
    try:
        cid = binascii.unhexlify(rec["controller_id"])
        cpub = binascii.unhexlify(rec["controller_key"])
        if len(cpub) == 32 and ids.endpoint_id(cpub) == cid:
            return cid, cpub, rec.get("claimed") is True
    except (KeyError, ValueError, TypeError):
        pass
    return None


def load(st, button, power_on, log):
    """(private key, public key, controller id, controller key, claimed, failed).

    button: the device has a pairing button; power_on: this boot followed a
    power-on or the reset pin (hw.power_on_boot()). StoreError when the
    identity is corrupt: the device does not boot."""
    rec = st.read(store.IDENTITY)
    if rec is None:
        priv = x25519.generate_private()
        pub = x25519.public_key(priv)
        # The key last: until it is written whole, the next boot is a first boot.
        st.write(store.ATTEMPTS, {"failed": 0})
        st.write(store.PAIRING, _UNPAIRED)
        st.write(
            store.IDENTITY,
            {"version": 1, "private_key": _hex(priv), "public_key": _hex(pub), "state_files": True},
        )
        log("first boot: generated the device key")
        return priv, pub, None, None, False, 0
    priv, pub = _keypair(rec)
    made = rec.get("state_files") is True

    a, bad = _read(st, store.ATTEMPTS)
    f = a.get("failed") if a is not None else None
    counter_lost = False
    if type(f) is int and 0 <= f <= MAX_FAILED:
        failed = f
    elif a is None and not bad and not made:
        failed = 0  # before the adoption: never written
    else:
        failed = MAX_FAILED
        counter_lost = True

    p, bad = _read(st, store.PAIRING)
    c = None
    if p is not None and p.get("controller_id") is not None:
        c = _controller(p)
        pairing_lost = c is None
    else:
        pairing_lost = p is None and (bad or made)

    if counter_lost or pairing_lost:
        log(
            "state: %s lost or corrupt: pairing locked out"
            % ("pairing record" if pairing_lost else "attempt counter")
        )
        failed = MAX_FAILED
    elif failed >= MAX_FAILED and c is None and not button and power_on:
        # Physical presence on a device without a button: a lockout recorded
        # before this boot is cleared, once per boot (firmware/README.md).
        failed = 0
        log("pairing lockout cleared at power-on (no pairing button)")
    # The lockout before the record that needs it (a cut in between leaves
    # the loss to be found again), and every record before identity.json's mark.
    if a is None or counter_lost or pairing_lost or failed != f:
        st.write(store.ATTEMPTS, {"failed": failed})
    if pairing_lost or p is None:
        st.write(store.PAIRING, _UNPAIRED)
    if not made:
        rec["state_files"] = True
        st.write(store.IDENTITY, rec)
    if c is None:
        return priv, pub, None, None, False, failed
    return priv, pub, c[0], c[1], c[2], failed
