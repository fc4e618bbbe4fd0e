"""Password hashes, and the bounded pool of threads that computes them.

New hashes are Argon2id (argon2-cffi) with the cost in `Argon2Params`, in the PHC
string format (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, 16-byte salt, 32-byte
hash). Hashes of the earlier scheme (`scrypt$N$r$p$salt$digest`) still verify;
`needs_rehash` tells the caller to replace them (and Argon2id hashes of another cost)
after the next successful login.

`HashPool` runs that work off the event loop, and bounds it: at most `queue` jobs are
admitted at once (running or waiting), at most `per_address` of them for one client
address. A job beyond either bound is refused at once (`PoolFull`), never queued. So
with W workers and one hash taking T, an admitted job is finished within
ceil(queue / W) * T, and one client address (holding at most `per_address` admitted
jobs) delays another's job by at most ceil(per_address / W) * T.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Argon2Params
from .stats import Stats

SALT_LEN: Final = 16
HASH_LEN: Final = 32


def _hasher(params: Argon2Params) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=HASH_LEN,
        salt_len=SALT_LEN,
        type=Type.ID,
    )


def _encode(password: str) -> bytes:
    # Any str (JSON may carry lone surrogates) hashes deterministically, never raises.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str, params: Argon2Params) -> str:
    return _hasher(params).hash(_encode(password))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (Argon2id, or the earlier scrypt scheme)."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    if not stored.startswith("$argon2id$"):
        return False
    try:
        # The parameters come from the stored hash; libargon2 compares in constant time.
        return PasswordHasher().verify(stored, _encode(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str, params: Argon2Params) -> bool:
    """Whether a hash that just verified should be replaced by one of `params`."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _hasher(params).check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    """The scheme before Argon2id: scrypt$N$r$p$salt-hex$digest-hex (32-byte digest)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = bytes.fromhex(digest)
        actual = scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        _encode(password), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=HASH_LEN
    )


def hash_scrypt_legacy(password: str, salt: bytes, n: int = 2**14) -> str:
    """A hash as relays before Argon2id stored them (tests and migrations only)."""
    return f"scrypt${n}$8$1${salt.hex()}${scrypt(password, salt, n, 8, 1).hex()}"


class PoolFull(Exception):
    """A hash job refused at once: the pool's queue is full (`per_address` False), or
    this client address has its share admitted already (`per_address` True)."""

    def __init__(self, per_address: bool) -> None:
        super().__init__("per address" if per_address else "queue full")
        self.per_address = per_address


class HashPool:
    def __init__(self, workers: int, queue: int, per_address: int, stats: Stats) -> None:
        self._stats = stats
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-hash")
        self._queue = queue
        self._per_address = per_address
        self._jobs = 0
        self._by_address: dict[str, int] = {}

    @property
    def jobs(self) -> int:
        """Jobs admitted now (running or waiting)."""
        return self._jobs

    async def run[T](self, address: str | None, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) on a worker; `address` None is the relay's own work (uncapped)."""
        if address is not None:
            if self._jobs >= self._queue:
                self._stats.refused("hash_pool_busy")
                raise PoolFull(per_address=False)
            if self._by_address.get(address, 0) >= self._per_address:
                self._stats.refused("hash_pool_per_address")
                raise PoolFull(per_address=True)
            self._by_address[address] = self._by_address.get(address, 0) + 1
        self._jobs += 1
        loop = asyncio.get_running_loop()
        future = self._executor.submit(fn, *args)

        def done(_: Future[T]) -> None:
            # A job's slot is free when its work ends (a cancelled request does not stop
            # a running hash), on the loop's thread.
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing to account
                loop.call_soon_threadsafe(self._release, address)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def _release(self, address: str | None) -> None:
        self._jobs -= 1
        if address is not None:
            left = self._by_address[address] - 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
