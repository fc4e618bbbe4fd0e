# Persistent state in one directory, one small JSON file per concern. Every
# write goes to a temporary file that is then renamed over the old one, so a
# power cut leaves either the old or the new file, never half of one.
import json
import os

IDENTITY = "identity.json"  # the device's static X25519 key pair
PROVISIONING = "provisioning.json"  # SPAKE2+ verifier (w0, L) and PBKDF parameters
PAIRING = "pairing.json"  # the pinned controller, when paired
ATTEMPTS = "attempts.json"  # failed pairing attempts in the current window


class StoreError(Exception):
    pass


class Store:
    def __init__(self, root):
        self.root = root.rstrip("/") or "/"
        try:
            os.stat(self.root)
        except OSError:
            os.mkdir(self.root)

    def path(self, name):
        return self.root + "/" + name

    def read(self, name):
        """The stored object, or None when the file does not exist."""
        try:
            with open(self.path(name)) as f:
                text = f.read()
        except OSError:
            return None
        try:
            obj = json.loads(text)
        except ValueError:
            raise StoreError(name + " is corrupt")
        if type(obj) is not dict:
            raise StoreError(name + " is corrupt")
        return obj

    def write(self, name, obj):
        p = self.path(name)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(obj))
        os.rename(tmp, p)

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass
