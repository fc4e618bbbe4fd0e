"""CPython stand-in for MicroPython's `micropython` module, for tests only.

With tests/cpython_shim on sys.path, the firmware modules import unchanged under
CPython: `const` returns its argument, the `native`/`viper` decorators return the
function untouched, and the viper casts behave like their viper meaning on a
little-endian board: `int`/`uint`/`ptr8`/`ptr16` are identities (indexing a bytes-like
object yields bytes), `ptr16`/`ptr32` give half-word / word views of a buffer.

Viper arithmetic wraps at the machine word; CPython ints do not. Firmware code masks
explicitly, so both give the same results, and the word views below reject a value that
does not fit 32 bits (a missing mask shows up as ValueError here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def const(value: Any) -> Any:
    return value


def native(func: Callable[..., Any]) -> Callable[..., Any]:
    return func


def viper(func: Callable[..., Any]) -> Callable[..., Any]:
    return func


def uint(value: int) -> int:
    return value


def ptr(value: Any) -> Any:
    return value


def ptr8(value: Any) -> Any:
    return value


def ptr16(value: Any) -> memoryview:
    return memoryview(value).cast("B").cast("H")


def ptr32(value: Any) -> memoryview:
    return memoryview(value).cast("B").cast("I")


def opt_level(level: int | None = None) -> int:
    return 0


def alloc_emergency_exception_buf(size: int) -> None:
    return None
