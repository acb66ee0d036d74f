"""FAX_RIG parsing for hardware_tests: bad values give clear errors, hardware specs need a number."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "hardware_tests"))
import hw_rig  # noqa: E402


async def test_hardware_spec_needs_number(monkeypatch):
    monkeypatch.setenv("FAX_RIG", "class1:/dev/ttyACM0,class2.0:/dev/ttyACM1")
    monkeypatch.delenv("FAX_RIG_NUMBER", raising=False)
    with pytest.raises(ValueError, match="FAX_RIG_NUMBER"):
        await hw_rig.start_rig()
    monkeypatch.setenv("FAX_RIG_NUMBER", "201")
    setup = await hw_rig.start_rig()
    assert not setup.virtual and setup.caller.kind == "class1" and setup.callee.dialect == "2.0"
    assert setup.number == "201" and "hardware" in setup.description


@pytest.mark.parametrize("value", ["class1:/dev/a", "class9:/dev/a,class1:/dev/b", "a,b,c"])
async def test_bad_fax_rig_values(monkeypatch, value):
    monkeypatch.setenv("FAX_RIG", value)
    monkeypatch.setenv("FAX_RIG_NUMBER", "1")
    with pytest.raises(ValueError):
        await hw_rig.start_rig()
