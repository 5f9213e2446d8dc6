"""pre_start hook of the example web service: brings the schema up to date before each start
(here: writes the version into $SCHEMA_FILE). Exit non-zero and the start fails, with this
program's stderr in the event."""

import os
import sys

target = os.environ.get("SCHEMA_VERSION", "3")
path = os.environ.get("SCHEMA_FILE", "schema.version")
if target == "broken":
    print("migration failed: the database is not reachable", file=sys.stderr)
    sys.exit(3)
print(f"migrating schema to version {target}", flush=True)
with open(path, "w") as f:
    f.write(target + "\n")
