#!/usr/bin/env bash
# Installs what `make bench` compares, apart from the project's own .venv:
#   bench/.build/venv  supervisor, circus, matplotlib, psutil, and herder itself installed
#                      NON-editable (as users install it: a wheel, bytecode compiled);
#   bench/.build/npm   pm2 from npm, only if node and npm are present (else a note);
#   s6, runit          Debian's packages via apt-get, when missing and apt-get can run (root);
#                      else a note, and compare.py skips them saying why;
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
# a current pip, as users installing herder today have: it writes the console script
# (`herder`) that pip >= 25 generates, which imports no `re` (pip 23's wrapper did: ~3 ms
# of every `herder status`)
if [ ! -f "$VENV/.pip25" ]; then
    pip_q --upgrade "pip>=25"
    touch "$VENV/.pip25"
fi
# herder as users install it: a wheel built from this tree, installed (not editable), then
# byte-compiled at install time (pip compiles too, but PYTHONDONTWRITEBYTECODE=1 in some
# environments; compileall makes sure), then checked: every module imports from its .pyc.
rm -rf "$BUILD/wheel"
"$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$BUILD/wheel" . \
    >/dev/null 2>&1 || "$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$BUILD/wheel" .
pip_q --no-deps --force-reinstall "$BUILD"/wheel/herder-*.whl
pip_q -r <(
    "$VENV/bin/python" - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(deps))
PY
)
PKG=$("$VENV/bin/python" -I -c 'import herder, os; print(os.path.dirname(herder.__file__))')
case "$PKG" in "$PWD"/herder) echo "bench: herder in $VENV resolves to the source tree, not the wheel" >&2; exit 1;; esac
"$VENV/bin/python" -I -m compileall -q "$PKG"
stale=$("$VENV/bin/python" -I - "$PKG" <<'PY'
import importlib.util, pathlib, sys
# a .py whose cached .pyc is missing or older than the source would be compiled on each run
bad = [str(p) for p in pathlib.Path(sys.argv[1]).rglob("*.py")
       if not pathlib.Path(importlib.util.cache_from_source(str(p))).exists()
       or pathlib.Path(importlib.util.cache_from_source(str(p))).stat().st_mtime < p.stat().st_mtime]
print(len(bad), *bad[:3])
PY
)
[ "${stale%% *}" = 0 ] || { echo "bench: herder modules without bytecode: $stale" >&2; exit 1; }

if ! command -v s6-svscan >/dev/null || ! command -v runsvdir >/dev/null || ! command -v execlineb >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get -o DPkg::Lock::Timeout=600 install -y -q s6 runit >/dev/null 2>&1 \
            || echo "bench: apt-get install s6 runit failed; s6 and runit will be skipped" >&2
    else
        echo "bench: s6/runit missing and apt-get unavailable (needs root); they will be skipped" >&2
    fi
fi

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
