"""Boot a real systemd in systemd-nspawn and drive it with nsenter (the integration tier).

The rootfs is built once per machine by setup-nspawn.sh (cached under
/var/cache/herder-it); every Container boots it with --overlay into a fresh upper dir,
so the base stays clean. herder's source is bind-mounted read-only at /opt/herder-src
and made importable by a .pth file; psutil and dotenv come from Debian packages in the
rootfs. Waits poll an observable (a pid, `systemctl show`) with a deadline; nothing
sleeps a fixed time. Only the processes this harness started are ever signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
from herdertest import wait_until

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent


def dependencies_dir() -> Path:
    """herder's runtime dependencies (pyproject's [project].dependencies), pip-installed once
    into a cache dir keyed by that list and bind-mounted read-only into the container, so the
    container runs herder with exactly what a user's `pip install herder` would bring.
    Container and host are both CPython 3.11 on Debian 12, so the same wheels fit."""
    import hashlib
    import sys
    import tomllib

    deps = tomllib.loads((SRC / "pyproject.toml").read_text())["project"]["dependencies"]
    cache = Path(os.environ.get("HERDER_IT_CACHE", "/var/cache/herder-it"))
    target = cache / ("deps-" + hashlib.sha1("\n".join(sorted(deps)).encode()).hexdigest()[:10])
    if not target.is_dir():
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(tmp), *deps],
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        try:
            tmp.rename(target)
        except OSError:  # another run made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def rootfs() -> tuple[Path | None, str]:
    """(path, why-not). Runs the setup script, which is quick once the cache exists."""
    if os.geteuid() != 0:
        return None, "the nspawn tier needs root (it boots a container); run `make test` as root"
    if not shutil.which("systemd-nspawn") and not shutil.which("apt-get"):
        return None, "systemd-nspawn is not installed and apt-get is not available"
    res = subprocess.run([str(HERE / "setup-nspawn.sh")], capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        return None, f"setup-nspawn.sh failed (exit {res.returncode}): {res.stderr.strip()[-500:]}"
    return Path(res.stdout.strip().splitlines()[-1]), ""


class Container:
    def __init__(self, root: Path, workdir: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.upper = workdir / "upper"
        self.log = workdir / "nspawn.log"
        self.upper.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None

    # -- lifetime --------------------------------------------------------------------

    def prepare(self) -> None:
        """Make herder importable inside: a .pth to the read-only source, and a launcher."""
        site = self.upper / "usr/lib/python3/dist-packages"
        site.mkdir(parents=True)
        (site / "herder-src.pth").write_text("/opt/herder-src\n/opt/herder-deps\n")
        bin_dir = self.upper / "usr/local/bin"
        bin_dir.mkdir(parents=True)
        launcher = bin_dir / "herder"
        launcher.write_text("#!/usr/bin/python3\nimport sys\nfrom herder.cli import main\nsys.exit(main())\n")
        launcher.chmod(0o755)

    def boot(self, *extra: str) -> None:
        """Boot; `extra` are more systemd-nspawn options (--private-network, --bind-ro=…)."""
        self.prepare()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(HERE / "nspawn-boot.sh"), self.name, str(self.root), str(self.upper),
                 f"--bind-ro={SRC}:/opt/herder-src", f"--bind-ro={dependencies_dir()}:/opt/herder-deps",
                 *extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_booted(None)

    def _nspawn(self) -> psutil.Process | None:
        if self.proc is None:
            return None
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                if child.name() == "systemd-nspawn":
                    return child
        except psutil.NoSuchProcess:
            return None
        return None

    def _pid1(self) -> int | None:
        ns = self._nspawn()
        if ns is None:
            return None
        try:
            kids = ns.children()
        except psutil.NoSuchProcess:
            return None
        return kids[0].pid if kids else None

    def wait_booted(self, old: int | None, timeout: float = 90.0) -> None:
        """A new PID 1 (≠ old) that is systemd with its private socket, then boot finished."""
        def ready() -> int | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"nspawn ended (rc {self.proc.returncode}); log:\n{self.log.read_text()[-3000:]}")
            pid = self._pid1()
            if not pid or pid == old:
                return None
            try:
                if not os.readlink(f"/proc/{pid}/exe").endswith("/systemd"):
                    return None
            except OSError:
                return None
            self.pid1 = pid
            return pid if self.sh("test -S /run/systemd/private", check=False).returncode == 0 else None

        wait_until("the container's systemd", ready, timeout)
        state = self.sh("systemctl is-system-running --wait", check=False, timeout=90).stdout.strip()
        assert state in ("running", "degraded"), \
            f"boot ended in state {state!r}: {self.sh('systemctl --failed').stdout}"

    def reboot(self) -> None:
        old = self.pid1
        self.sh("systemctl reboot", check=False)
        self.wait_booted(old)

    def poweroff(self) -> None:
        """Power off cleanly; kill our own nspawn (by pid) if it does not stop in time."""
        if self.proc is None:
            return
        if self.pid1 is not None and self.proc.poll() is None:
            self.sh("systemctl poweroff", check=False, timeout=30)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ns = self._nspawn()
            if ns is not None:
                ns.send_signal(signal.SIGKILL)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    # -- driving -------------------------------------------------------------------------

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 120.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert self.pid1 is not None
        cmd = ["nsenter", "--target", str(self.pid1), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
               "--", "/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
               "LANG=C.UTF-8", *argv]
        # own session: a mistaken `kill 0` inside can never reach the test runner's process group
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, start_new_session=True)
        if check and res.returncode != 0:
            raise AssertionError(f"{argv} failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def sh(self, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(["/bin/sh", "-c", script], **kw)  # type: ignore[arg-type]

    def popen(self, argv: list[str]) -> subprocess.Popen[str]:
        assert self.pid1 is not None
        cmd = ["nsenter", "--target", str(self.pid1), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
               "--", "/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", *argv]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def show(self, unit: str, prop: str) -> str:
        return self.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file inside the running container (through /proc/PID/root)."""
        target = Path(f"/proc/{self.pid1}/root") / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def exists(self, path: str) -> bool:
        return os.path.lexists(Path(f"/proc/{self.pid1}/root") / path.lstrip("/"))  # links point inside
