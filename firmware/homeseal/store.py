# Persistent state in one directory, one small JSON record per concern, written
# so that a power cut at any moment leaves the old record or the new one, on
# FAT and littlefs alike (firmware/README.md "State files").
#
# Each record has two slots, NAME and NAME.b. A slot holds the record's JSON
# object with a sequence number and, last, a checksum of the text before it:
#   {..., "seq": 7, "sum": "<first 16 hex digits of SHA-256(the text before it)>"}
# A read takes the valid slot with the highest seq; a write rewrites the other
# slot in place (never the newest valid one, never a rename: MicroPython's FAT
# driver turns rename-over-existing into remove + rename). A cut while a slot
# is written leaves that slot invalid (truncated, or a stale older copy with a
# lower seq), and the newest valid one as it was.
#
# A plain JSON object without seq/sum (what tools/provision.py writes, and the
# single files of older firmware) is a valid slot with seq 0; so is the older
# firmware's NAME.tmp, which it had written whole when a cut hit its rename
# (it is the newer of the two, and is removed at the next write).
import json
import os
from binascii import hexlify
from hashlib import sha256

IDENTITY = "identity.json"  # the device's static X25519 key pair
PROVISIONING = "provisioning.json"  # SPAKE2+ verifier (w0, L) and PBKDF parameters
PAIRING = "pairing.json"  # the pinned controller, or {"controller_id": null}
ATTEMPTS = "attempts.json"  # failed pairing attempts in the current window
OUTPUTS = "outputs.json"  # the states of the outputs with restore: last

_SUM = ', "sum": "'


class StoreError(Exception):
    pass


def _sum(text):
    return hexlify(sha256(text.encode()).digest()[:8]).decode()


def _parse(text):
    """(seq, object) of one slot's text, or None when it is not a valid slot."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if type(obj) is not dict:
        return None
    i = text.rfind(_SUM)
    if i < 0:
        # A plain object: the provisioning tool's, or older firmware's.
        return None if "seq" in obj else (0, obj)
    seq = obj.pop("seq", None)
    s = text[i + 10 : -2]
    if type(seq) is not int or obj.pop("sum", None) != s or _sum(text[:i] + "}") != s:
        return None
    return seq, obj


class Store:
    def __init__(self, root):
        self.root = root.rstrip("/") or "/"
        self._seq = {}  # name -> (seq, slot) of the newest valid copy read or written
        try:
            os.stat(self.root)
        except OSError:
            os.mkdir(self.root)

    def path(self, name):
        return self.root + "/" + name

    def _slot(self, name, i):
        return self.path(name) + ("", ".b", ".tmp")[i]

    def read(self, name):
        """The record, or None when it was never written whole; StoreError when
        no slot is valid otherwise (corruption: a power cut never does that)."""
        best = None
        seen = []
        for i in (0, 1, 2):
            try:
                with open(self._slot(name, i)) as f:
                    text = f.read()
            except OSError:
                continue
            seen.append(i)
            rec = _parse(text)
            if rec is not None and (best is None or rec[0] >= best[0]):
                best = (rec[0], i, rec[1])
        if best is not None:
            self._seq[name] = (best[0], best[1])
            return best[2]
        # NAME (or the older firmware's NAME.tmp) alone and invalid: its first
        # write was cut. NAME.b is written only once NAME is valid, and NAME is
        # never removed: anything else is corruption.
        if len(seen) > 1 or seen == [1]:
            raise StoreError(name + " is corrupt")
        return None

    def write(self, name, obj):
        if name not in self._seq:
            try:
                self.read(name)
            except StoreError:
                pass
        seq, newest = self._seq.get(name, (0, 1))
        i = 1 if newest == 0 else 0
        body = json.dumps(obj)
        body = body[:-1] + (", " if len(body) > 2 else "") + '"seq": %d}' % (seq + 1)
        with open(self._slot(name, i), "w") as f:
            f.write(body[:-1] + _SUM + _sum(body) + '"}')
            f.flush()
        sync = getattr(os, "sync", None)
        if sync is not None:
            sync()
        self._seq[name] = (seq + 1, i)
        if newest == 2:
            # The older firmware's NAME.tmp is superseded now.
            try:
                os.remove(self._slot(name, 2))
            except OSError:
                pass

    def remove(self, name):
        """Every slot of a record (tests and tools: the device never removes one)."""
        self._seq.pop(name, None)
        for i in (0, 1, 2):
            try:
                os.remove(self._slot(name, i))
            except OSError:
                pass
