"""``faxengine`` builds every parser on each run: the modem commands must not load the rig or spandsp
to do so, and a missing libspandsp must leave the CLI working and be reported by ``faxengine rig``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("modem.rig.rig", "modem.rig.virtual_modem", "modem.spandsp", "modem.dial", "modem.probe")


def _loaded_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(120)
def test_building_the_cli_parser_leaves_the_rig_and_spandsp_unloaded():
    loaded = _loaded_after("import api.cli\napi.cli.build_parser()")
    assert "modem.commands" in loaded and "modem.rig.commands" in loaded
    assert [m for m in HEAVY if m in loaded] == []


@pytest.mark.timeout(120)
def test_rig_package_loads_the_rig_on_first_use_only():
    loaded = _loaded_after("import modem.rig\nfrom modem.rig import commands, MODES")
    assert "modem.rig.rig" not in loaded
    loaded = _loaded_after("from modem.rig import Rig, RigConfig")
    assert "modem.rig.rig" in loaded


def test_rig_names_resolve_to_the_rig_module():
    import modem.rig
    from modem.rig import options, rig

    assert modem.rig.Rig is rig.Rig and modem.rig.RigError is rig.RigError
    assert modem.rig.MODES == rig.MODES == options.MODES
    assert modem.rig.DIAL_RESULTS == rig.DIAL_RESULTS == options.DIAL_RESULTS
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modem.rig.Nope  # noqa: B018


def test_rig_command_reports_a_missing_libspandsp(monkeypatch, capsys):
    from modem.rig.commands import register
    from modem.spandsp import _lib

    monkeypatch.setattr(_lib, "_lib", None)
    monkeypatch.setattr(_lib, "SONAME", "libspandsp.so.999")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rig", "pair"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("faxengine rig: cannot load libspandsp.so.999") and "libspandsp2" in err
