"""`scripts/demo pins` (tools/demo): each pin named by its entity, values in their units."""

from __future__ import annotations

from testbed.system import BUTTON_PIN, DOOR_PIN, LIGHT_PIN, SWITCH_PIN, TEMP_PIN
from tools.demo.__main__ import describe_pins


def test_pins_by_entity_in_their_units() -> None:
    pins = {str(SWITCH_PIN): 1, str(LIGHT_PIN): 32896, str(TEMP_PIN): 2350, str(DOOR_PIN): 0}
    lines = describe_pins(pins, {str(BUTTON_PIN): 3})
    assert lines == [
        f"Heater       pin {SWITCH_PIN:<3} on",
        f"Lamp         pin {LIGHT_PIN:<3} on, 50 % (duty 32896)",
        f"Temperature  pin {TEMP_PIN:<3} 23.5 °C",
        f"Door         pin {DOOR_PIN:<3} closed",
        f"Bell         pin {BUTTON_PIN:<3} pressed 3 times",
    ]
    off = describe_pins({str(SWITCH_PIN): 0, str(LIGHT_PIN): 0, str(DOOR_PIN): 1}, {})
    assert off[0].endswith(" off")
    assert off[1].endswith(" off")
    assert off[2].endswith(" ?")
    assert off[3].endswith(" open")
    assert off[4].endswith("pressed 0 times")
