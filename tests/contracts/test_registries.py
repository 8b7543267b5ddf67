"""Every registry is complete after a bare `import dlm`: importing every other dlm module adds no entry."""

import json
import subprocess
import sys

SCRIPT = """
import importlib, json, pkgutil
import dlm
from dlm import registry
names = [n for n, v in vars(registry).items() if isinstance(v, registry.Registry)]
before = {n: sorted(getattr(registry, n)) for n in names}
for info in pkgutil.walk_packages(dlm.__path__, "dlm."):
    importlib.import_module(info.name)
after = {n: sorted(getattr(registry, n)) for n in names}
print(json.dumps({"before": before, "after": after}))
"""


def test_import_dlm_fills_every_registry():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen["before"] == seen["after"]
    assert all(seen["before"].values()), [name for name, entries in seen["before"].items() if not entries]
    assert {"SAMPLERS", "CACHES", "SOURCES", "OBJECTIVES", "PROCESSES", "SCHEDULES"} <= set(seen["before"])
    assert "confidence" in seen["before"]["SAMPLERS"] and "dkv_decode" in seen["before"]["CACHES"]
