"""An image with herder from this working tree, for the container tier (test_container.py).

FROM the local Debian base image (dockerd.py: mmdebstrap + `docker import`, python3 3.11,
no pip, no registry), with:

- /opt/herder/site: herder's package as it is in the checkout (a copy of the source tree:
  herder is pure Python, so this is what its wheel would unpack to) and its dependencies,
  unpacked from the hash-pinned wheels setup-docker.sh caches (container-wheels.txt, for
  CPython 3.11 on glibc x86_64), supervisor among them for the comparison; a .pth file
  puts the folder on the image's sys.path, so no PYTHONPATH leaks into the services;
- /usr/local/bin/herder and /usr/local/bin/supervisord, two-line launchers;
- /usr/bin/tini, Debian's, copied from the host (same release and libc), when present.

Content-tagged: the tag is a hash of everything copied in, so a daemon that has the image
skips the build; the build itself is a few COPY layers (seconds).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

from engines.dockerd import Dockerd

ROOT = Path(__file__).resolve().parents[2]

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY site /opt/herder/site
COPY bin/ /usr/local/bin/
RUN echo /opt/herder/site > /usr/lib/python3/dist-packages/herder-site.pth \\
 && python3 -c 'import herder.cli, psutil, yaml, h11, supervisor'
"""

LAUNCHERS = {
    "herder": "from herder.cli import main\nraise SystemExit(main())\n",
    "supervisord": "from supervisor.supervisord import main\nraise SystemExit(main())\n",
}


def context(dest: Path, wheels: Path, tini: str | None) -> str:
    """Lay the build context out in dest; return its content hash."""
    site = dest / "site"
    shutil.copytree(ROOT / "herder", site / "herder", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
    bindir = dest / "bin"
    bindir.mkdir()
    for name, body in LAUNCHERS.items():
        (bindir / name).write_text("#!/usr/bin/python3\n" + body)
        (bindir / name).chmod(0o755)
    if tini:
        shutil.copy2(tini, bindir / "tini")
    (dest / "Dockerfile").write_text(DOCKERFILE)
    h = hashlib.sha256()
    for p in sorted(dest.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(dest)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build(d: Dockerd, work: Path) -> str | None:
    """The image's tag, built if this daemon does not have it; None without the wheels."""
    wheels = d.paths.get("WHEELS")
    if not wheels:
        return None
    key = context(work, Path(wheels), d.paths.get("TINI"))
    tag = f"local/herder-init:{key}"
    if d.docker("image", "inspect", tag, check=False).returncode != 0:
        d.build(work, tag, BASE=d.base_image())
    return tag
