"""The core is plain Python: importing every module of ``pm_assets.core`` loads no Dagster module."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import pm_assets.core as core
names = [m.name for m in pkgutil.iter_modules(core.__path__)]
for name in names:
    importlib.import_module("pm_assets.core." + name)
loaded = sorted(k for k in sys.modules if k == "dagster" or k.startswith("dagster."))
print(len(names), len(loaded), loaded[:3])
"""


def test_importing_every_core_module_loads_no_dagster():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 30  # every core module was imported, not an empty package
    assert out[1] == "0", out
