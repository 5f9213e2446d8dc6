#!/usr/bin/env bash
# Installs what `make bench` compares, apart from the project's own .venv:
#   bench/.build/venv  supervisor, circus, matplotlib, psutil, and herder itself installed
#                      NON-editable (as users install it: a wheel, bytecode compiled);
#   bench/.build/npm   pm2 from npm, only if node and npm are present (else a note);
#   bench/.build/stamp, flood   the C children.
# Idempotent: the peers are installed once; herder is reinstalled on every run so the
# figures are for the code in this tree. Exit 0 even without node; non-zero if PyPI fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=bench/.build
VENV=$BUILD/venv
PY=${PYTHON:-python3}
mkdir -p "$BUILD"
pip_q() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v '^WARNING: Location' >&2); }
unset PYTHONDONTWRITEBYTECODE   # users have .pyc files; measure herder with them

if [ ! -f "$VENV/.peers" ]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    pip_q supervisor circus matplotlib psutil
    touch "$VENV/.peers"
fi
pip_q --no-deps --force-reinstall --no-build-isolation . >/dev/null 2>&1 || pip_q --force-reinstall .
pip_q -r <(
    "$VENV/bin/python" - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(deps))
PY
)
"$VENV/bin/python" -I -m compileall -q "$("$VENV/bin/python" -I -c 'import herder, os; print(os.path.dirname(herder.__file__))')"

if command -v node >/dev/null && command -v npm >/dev/null; then
    if [ ! -x "$BUILD/npm/node_modules/.bin/pm2" ]; then
        mkdir -p "$BUILD/npm"
        (cd "$BUILD/npm" && npm install --no-audit --no-fund --silent --prefix . pm2 >/dev/null) \
            || echo "bench: npm install pm2 failed; PM2 will be skipped" >&2
    fi
else
    echo "bench: node/npm not found; PM2 will be skipped" >&2
fi

for c in stamp flood; do
    if [ ! -x "$BUILD/$c" ] || [ "bench/$c.c" -nt "$BUILD/$c" ]; then
        gcc -O2 -Wall -o "$BUILD/$c" "bench/$c.c"
    fi
done
echo "bench: environment ready ($VENV)"
