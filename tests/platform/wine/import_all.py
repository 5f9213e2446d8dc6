"""Import every herder module under the Windows CPython (Windows side of test_windows_imports.py).

argv[1]: JSON list of module names that are allowed to fail (POSIX-only, with the reason
kept on the Linux side). Prints one JSON object: {"imported": [...], "failed": {name: error}}.
"""

import importlib
import json
import pkgutil
import sys

import herder

allowed = set(json.loads(sys.argv[1]))
imported, failed = [], {}
for info in pkgutil.walk_packages(herder.__path__, "herder.", onerror=lambda name: None):
    if info.name == "herder.__main__":   # runs the CLI when imported
        continue
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except BaseException as e:  # noqa: BLE001 - every import failure is the report
        failed[info.name] = f"{type(e).__name__}: {e}"
print(json.dumps({"imported": imported, "failed": failed, "file": herder.__file__, "version": sys.version}))
