# Deterministic cost counter on QEMU's MPS2-AN385 board (the port has no time
# module). CMSDK APB timer 0 counts down at the 25 MHz system clock; under
# `qemu-system-arm -icount shift=0` one guest instruction is one virtual
# nanosecond, so one tick is 40 executed instructions, independent of host load.
import machine
from micropython import const

_TIMER0 = const(0x40000000)  # CTRL +0, VALUE +4, RELOAD +8
INSNS_PER_TICK = const(40)


def start():
    machine.mem32[_TIMER0] = 0
    machine.mem32[_TIMER0 + 8] = 0xFFFFFFFF
    machine.mem32[_TIMER0 + 4] = 0xFFFFFFFF
    machine.mem32[_TIMER0] = 1


def ticks():
    # Down counter: ticks elapsed since start() (wraps after 2**32 ticks, 171 s virtual).
    return 0xFFFFFFFF - (machine.mem32[_TIMER0 + 4] & 0xFFFFFFFF)
