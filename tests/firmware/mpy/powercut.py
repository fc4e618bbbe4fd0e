# Power cuts at every write step of every state file, then a boot (L5), on the
# MicroPython unix port, run by tests/firmware/test_power_safe_state.py.
#
#   micropython powercut.py FS WORKDIR [SCENARIO...]
#
# FS is where the state directory lives:
#   posix  the unix port's own files, behind a shim of store.py's `open` and
#          `os` that cuts power before any step of a write: open (before or
#          after the truncation), each write (buffered, lost until flushed),
#          flush (nothing, half or all of it on disk), close, remove, rename
#   fat    MicroPython's FAT driver (os.VfsFat) on a RAM block device that
#   lfs    ... or littlefs (os.VfsLfs2): the cut falls before any block write
#          or erase, or halfway through one (a torn sector)
# Each scenario is one thing the device writes (a boot, an attempt counted, a
# pairing, ...). For every step k it restores the state before, boots, runs
# the operation with the power cut at step k, boots again, and checks what
# that boot sees against the state before and after the operation: each
# record (identity, pairing, attempts) is the old one or the new one, and the
# boot is never weaker -- no pairing window unless the old or the new state
# has one, never with more attempts left. Scenarios with an expectation check
# the uncut run too (a lost or corrupt counter boots as a full one, no window).
# Prints "ok SCENARIO STEPS" per scenario (or "FAIL SCENARIO: why") and "done".
import asyncio
import gc
import os
import sys

from homeseal import config, device, envelope, hw_sim, store, ws

FS, WORK = sys.argv[1], sys.argv[2]
ONLY = sys.argv[3:]
BUFS = ws.Buffers(512)
CID_HEX = "9fa96c89f41d73592f6a"  # Appendix A's controller
CPUB_HEX = "8f688f73540016d133c0861df31276c148542fcb884b9699dc34832b947cb561"
PROV = {
    "version": 1,
    "w0": "11" * 32,
    "L": (
        "045b36890dacbd7c9a96bb74a1ee28b3d2d75b72e09a20ef25cf8e6fd8a9f0350d"
        "0e14bed8d4682a34d83538bdff5b96e89a6666ec0db5745d02fa1210072df75a"
    ),
    "salt": "33" * 16,
    "iterations": 1000,
}
DEV_PRIV = "77" * 32
RECORDS = (store.IDENTITY, store.PAIRING, store.ATTEMPTS)


class PowerCut(BaseException):
    """Not an Exception: no `except Exception` in the firmware may swallow it."""


class Power:
    """Counts write steps; at step `cut_at` the power goes, and stays gone."""

    def __init__(self, cut_at=0):
        self.cut_at = cut_at
        self.n = 0
        self.dead = False

    def step(self):
        if self.dead:
            raise PowerCut()
        self.n += 1
        if self.n == self.cut_at:
            self.dead = True
            raise PowerCut()

    def torn(self):
        """True when this step is the cut, after half of it happened."""
        if self.dead:
            raise PowerCut()
        self.n += 1
        if self.n == self.cut_at:
            self.dead = True
            return True
        return False


POWER = Power()

# ------------------------------------------------------------ posix: a shim of store.py's I/O

_open = open


class ShimFile:
    def __init__(self, path, mode):
        POWER.step()  # before the open: nothing happened
        self._f = _open(path, mode)
        POWER.step()  # after it: the file exists, truncated
        self._buf = []

    def write(self, data):
        POWER.step()
        self._buf.append(data)  # buffered: not on disk until flushed
        return len(data)

    def flush(self):
        data = "".join(self._buf)
        self._buf = []
        if data:
            if POWER.torn():
                self._f.write(data[: len(data) // 2])
                raise PowerCut()
            self._f.write(data)

    def close(self):
        self.flush()
        POWER.step()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def shim_open(path, mode="r"):
    if "w" in mode or "a" in mode:
        return ShimFile(path, mode)
    return _open(path, mode)


class ShimOS:
    def remove(self, path):
        POWER.step()
        os.remove(path)

    def rename(self, a, b):
        POWER.step()
        os.rename(a, b)

    def mkdir(self, path):
        POWER.step()
        os.mkdir(path)

    def __getattr__(self, name):
        return getattr(os, name)


# ------------------------------------------------------------ fat, lfs: a RAM block device

BLOCK = 512
BLOCKS = 192


class RAMBlock:
    """One mount's view of the flash. After the cut it reads and writes nothing:
    the cut mount's objects (an open file the garbage collector closes later)
    must not reach the next boot's flash. No allocation on that path either:
    finalizers run with the heap locked."""

    def __init__(self, data, power):
        self.data = data
        self.power = power

    def readblocks(self, n, buf, off=0):
        if self.power.dead:
            return
        a = n * BLOCK + off
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if self.power.dead:
            return
        a = n * BLOCK + (off or 0)
        buf = bytes(buf)
        if self.power.torn():
            h = len(buf) // 2
            self.data[a : a + h] = buf[:h]
            raise PowerCut()
        self.data[a : a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS
        if op == 5:
            return BLOCK
        if op == 6 and not self.power.dead:  # erase (littlefs)
            self.power.step()
            a = arg * BLOCK
            self.data[a : a + BLOCK] = b"\xff" * BLOCK
        return 0


VFS = {"fat": getattr(os, "VfsFat", None), "lfs": getattr(os, "VfsLfs2", None)}
MOUNT = "/pc"
FLASH = bytearray(BLOCK * BLOCKS)


def mount(power):
    try:
        os.umount(MOUNT)
    except OSError:
        pass
    os.mount(VFS[FS](RAMBlock(FLASH, power)), MOUNT)


# ------------------------------------------------------------ the state directory

STATE = MOUNT + "/state" if FS in VFS else WORK + "/state"


def power_on(cut_at=0):
    """Power back (a fresh mount on the flash as the cut left it), cut at step
    cut_at of what follows (0: never)."""
    global POWER  # noqa: PLW0603  (the power supply of this run: one per process)
    POWER = Power(cut_at)
    if FS in VFS:
        mount(POWER)
    else:
        store.open = shim_open
        store.os = ShimOS()


def _files():
    try:
        return [n for n in os.listdir(STATE)]
    except OSError:
        return []


def snapshot():
    if FS in VFS:
        return bytes(FLASH)
    out = {}
    for n in _files():
        with _open(STATE + "/" + n) as f:
            out[n] = f.read()
    return out


def restore(snap):
    if FS in VFS:
        FLASH[:] = snap
        return
    for n in _files():
        os.remove(STATE + "/" + n)
    try:
        os.mkdir(STATE)
    except OSError:
        pass
    for n, text in snap.items():
        with _open(STATE + "/" + n, "w") as f:
            f.write(text)


def fresh_fs():
    """An empty state directory (a freshly formatted flash), the power on."""
    global POWER  # noqa: PLW0603  (the power supply of this run: one per process)
    POWER = Power()
    if FS in VFS:
        FLASH[:] = (b"\xff" if FS == "lfs" else b"\x00") * len(FLASH)
        VFS[FS].mkfs(RAMBlock(FLASH, POWER))
        mount(POWER)
        os.mkdir(STATE)
    else:
        store.open = shim_open
        store.os = ShimOS()
        restore({})


def put(name, obj):
    """A record the way the device would have written it (through store.py, uncut)."""
    st = store.Store(STATE)
    st.write(name, obj)


def put_plain(name, text):
    with _open(STATE + "/" + name, "w") as f:
        f.write(text)


# ------------------------------------------------------------ booting and looking


def _config(button):
    path = WORK + "/config-%d.json" % button
    cfg = {
        "relay": {"url": "ws://127.0.0.1:9/ws/device"},
        "entities": [{"key": "relay1", "kind": "switch", "name": "Relay", "pin": 5}],
    }
    if button:
        cfg["pairing_button"] = {"pin": 0}
    with _open(path, "w") as f:
        f.write(__import__("json").dumps(cfg))
    return config.load(path)


CONFIGS = {True: _config(True), False: _config(False)}


def boot(button=True):
    dev = device.Device(CONFIGS[button], store.Store(STATE), hw_sim, lambda m: None, 60000, BUFS)
    gc.collect()
    return dev


def outcome(dev):
    p = dev.pairing
    out = (dev.pub, dev.controller_id, dev.claimed, p.failed, p.window_open)
    p.close_window("test")
    return out


def records():
    out = []
    st = store.Store(STATE)
    for name in RECORDS:
        try:
            out.append(st.read(name))
        except store.StoreError:
            out.append("corrupt")
    return out


def _acceptable(o, old, new):
    """o is what a boot saw after a cut; old and new: before and after the operation."""
    if o[0] not in (old[0], new[0]):
        return "the device key changed"
    if o[1] not in (old[1], new[1]):
        return "the pinned controller is neither the old nor the new one"
    if o[4]:
        left = [20 - x[3] for x in (old, new) if x[4]]
        if not left:
            return "a pairing window that neither state has"
        if 20 - o[3] > max(left):
            return "more attempts left than either state"
    return None


def run(name, prepare, op=None, button=True, first_boot=False, expect=None):
    """prepare() builds the state before; op(dev) is the operation on a booted
    device (None: the boot itself is the operation); expect(new) says what is
    wrong with the uncut run's outcome, if anything (None: nothing)."""
    fresh_fs()
    prepare()
    before = snapshot()
    old_records = records()
    # The uncut run: what the operation leaves.
    if op is None:
        boot(button).pairing.close_window("test")
    else:
        op(boot(button))
    new_records = records()
    new = outcome(boot(button))
    why = expect(new) if expect is not None else None
    if why:
        raise AssertionError("uncut: %s: %r" % (why, new))
    restore(before)
    old = new if op is None else outcome(boot(button))
    k = 0
    while True:
        k += 1
        restore(before)
        power_on()
        dev = None if op is None else boot(button)
        power_on(cut_at=k)
        try:
            if op is None:
                boot(button).pairing.close_window("test")
            else:
                op(dev)
        except BaseException:
            # PowerCut, or what the file system made of it (littlefs turns a
            # failing block device into OSError): after the cut, nothing counts.
            if not POWER.dead:
                raise
        else:
            if POWER.n < k:
                return k - 1  # the operation had fewer steps: all were cut once
        power_on()
        got = records()
        for i, rec in enumerate(got):
            if first_boot and RECORDS[i] == store.IDENTITY:
                continue  # a key written whole or not at all: checked by the boot below
            if rec not in (old_records[i], new_records[i]):
                raise AssertionError(
                    "cut at step %d: %s is %r, neither %r nor %r"
                    % (k, RECORDS[i], rec, old_records[i], new_records[i])
                )
        o = outcome(boot(button))
        if first_boot:
            # A new key each time the first boot runs again: only its shape matters.
            o = (new[0],) + o[1:]
        why = _acceptable(o, old, new)
        if why:
            raise AssertionError("cut at step %d: %s: %r (old %r, new %r)" % (k, why, o, old, new))


# ------------------------------------------------------------ the scenarios


def _ident_plain():
    from homeseal import x25519

    pub = x25519.public_key(bytes.fromhex(DEV_PRIV))
    return '{"version": 1, "private_key": "%s", "public_key": "%s"}' % (DEV_PRIV, pub.hex())


def tool_state():
    """What tools/provision.py writes: identity.json and provisioning.json, plain."""
    put_plain(store.IDENTITY, _ident_plain())
    put_plain(store.PROVISIONING, __import__("json").dumps(PROV))


def adopted(failed=0, pairing=None):
    """A device that has booted before (the mark, every record in slot format)."""
    tool_state()
    st = store.Store(STATE)
    rec = st.read(store.IDENTITY)
    st.write(store.ATTEMPTS, {"failed": failed})
    st.write(store.PAIRING, pairing or {"controller_id": None})
    rec["state_files"] = True
    st.write(store.IDENTITY, rec)


PAIRED = {"controller_id": CID_HEX, "controller_key": CPUB_HEX, "claimed": False}
CLAIMED = {"controller_id": CID_HEX, "controller_key": CPUB_HEX, "claimed": True}


def _count_attempt(dev):
    frames = dev.pairing.handle(envelope.PAIR_START, b"C" * 10, b"\x01\x01", False)
    assert frames[0][2][0] == 0x02, frames
    frames = dev.pairing.handle(envelope.PAIR, b"C" * 10, b"\x03\x04" + bytes(64), False)
    assert frames[0][2][:2] == b"\x7f\x05", frames


def _paired(dev):
    dev.pairing.paired(bytes.fromhex(CID_HEX), bytes.fromhex(CPUB_HEX))


def _claimed(dev):
    asyncio.run(dev._on_frame(envelope.CLAIMED, bytes.fromhex(CID_HEX), b""))


def _unpair(dev):
    asyncio.run(dev._forget_controller("test"))


def _long_press(dev):
    asyncio.run(dev._on_button("open"))


def _garbled_counter():
    """Both slots of the counter unreadable (flash corruption, not a power cut)."""
    adopted(4)
    st = store.Store(STATE)
    st.write(store.ATTEMPTS, {"failed": 4})
    put_plain(store.ATTEMPTS, '{"failed": 0, "seq": 9, "sum": "0000000000000000"}')
    put_plain(store.ATTEMPTS + ".b", '{"failed": 0')


def _locked_out(new):
    """A lost or corrupt counter is a full one (no window), never zero failures."""
    if new[3] != 20 or new[4]:
        return "the counter did not fail closed"
    return None


SCENARIOS = [
    ("first boot", lambda: put_plain(store.PROVISIONING, __import__("json").dumps(PROV)), None,
     True, True),
    ("adoption of the tool's files", tool_state, None, True, False),
    ("older firmware's single files", lambda: (tool_state(), put_plain(store.ATTEMPTS,
     '{"failed": 7}')), None, True, False),
    ("older firmware's cut rename", lambda: (tool_state(), put_plain(
     store.ATTEMPTS + ".tmp", '{"failed": 8}'), put_plain(store.PAIRING + ".tmp", __import__(
     "json").dumps(CLAIMED))), None, True, False),
    ("an attempt counted", lambda: adopted(3), _count_attempt, True, False),
    ("the 20th attempt counted", lambda: adopted(19), _count_attempt, True, False),
    ("paired", lambda: adopted(5), _paired, True, False),
    ("claimed", lambda: adopted(0, PAIRED), _claimed, True, False),
    ("unpaired", lambda: adopted(2, CLAIMED), _unpair, True, False),
    ("counter reset by a long press", lambda: adopted(20), _long_press, True, False),
    ("lockout cleared at power-on", lambda: adopted(20), None, False, False),
    ("a lost counter fails closed", lambda: (adopted(4), store.Store(STATE).remove(
     store.ATTEMPTS)), None, True, False, _locked_out),
    ("a corrupt counter fails closed", _garbled_counter, None, True, False, _locked_out),
]  # fmt: skip

for name, prepare, op, button, first, *expect in SCENARIOS:
    if ONLY and name not in ONLY:
        continue
    try:
        steps = run(name, prepare, op, button, first, *expect)
        print("ok %s %d" % (name, steps))
    except Exception as e:  # each scenario reports, and the run goes on
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
print("done")
