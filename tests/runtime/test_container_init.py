"""herder as a container's init, piece by piece: detection (herder.runtime.container), the
[herder] console / log_files choice, and every line on herder's stdout/stderr
(herder.logs._stdio) through real pipes.

Detection reads a root given as an argument (a temp dir laid out like the machine it
describes); the real machine's answer is checked in a real container (tests/engines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from herder.logs._framing import Record
from herder.logs._stdio import StdioTap, console_mode, files_on
from herder.runtime.container import detect, write_termination_message


def _root(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "env", "engine"), [
    ({".dockerenv": ""}, {}, "docker"),
    ({"run/.containerenv": ""}, {}, "podman"),
    ({}, {"container": "lxc"}, "lxc"),
    ({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
    ({"proc/self/cgroup": "0::/\n"}, {}, "container"),
    ({"proc/self/cgroup": "0::/user.slice/session-1.scope\n"}, {}, None),
    ({}, {}, None),
])
def test_engine_markers(tmp_path: Path, files: dict[str, str], env: dict[str, str], engine: str | None) -> None:
    init = detect(pid=4242, ppid=17, environ=env, root=_root(tmp_path, files))
    assert init.engine == engine and not init.pid1 and not init.container_init


def test_pid_1_is_the_init_with_or_without_an_engine(tmp_path: Path) -> None:
    docker = detect(pid=1, ppid=0, environ={}, root=_root(tmp_path / "a", {".dockerenv": ""}))
    assert docker.container_init and docker.describe() == "PID 1 of a docker container"
    bare = detect(pid=1, ppid=0, environ={}, root=_root(tmp_path / "b", {}))   # unshare --pid
    assert bare.container_init and bare.describe() == "PID 1 of its pid namespace"


def test_under_a_tiny_init_but_not_under_systemd(tmp_path: Path) -> None:
    tini = detect(pid=7, ppid=1, environ={}, root=_root(tmp_path / "a", {".dockerenv": "", "proc/1/comm": "tini\n"}))
    assert tini.container_init and tini.under == "tini"
    assert tini.describe() == "the main process of a docker container, under tini (PID 1)"
    systemd = detect(pid=7, ppid=1, environ={"container": "systemd-nspawn"},
                     root=_root(tmp_path / "b", {"proc/1/comm": "systemd\n"}))
    assert not systemd.container_init and systemd.describe() == "in a systemd-nspawn container"
    keeper = detect(pid=7, ppid=1, environ={}, root=_root(tmp_path / "d", {
        ".dockerenv": "", "proc/1/comm": "python3\n", "proc/1/cmdline": "python3\0-m\0herder.keeper\0--\0"}))
    assert keeper.container_init and keeper.under == "herder's keeper"
    host = detect(pid=7, ppid=1, environ={}, root=_root(tmp_path / "c", {"proc/1/comm": "tini\n"}))
    assert not host.container_init       # a tini on a host is not a container's


def test_termination_message_only_where_the_kubelet_mounted_one(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    assert not write_termination_message("web failed", path)
    assert not path.exists()
    path.write_text("")
    assert write_termination_message("x" * 5000, path)
    assert path.read_text() == "x" * 4096 + "\n"


@pytest.mark.parametrize(("setting", "flag", "init", "tty", "mode"), [
    ("auto", None, True, False, "text"),       # a container's init: every line to stdout/stderr
    ("auto", None, False, True, "view"),       # a terminal: the `name |` view
    ("auto", None, False, False, "off"),       # under systemd or redirected: the files are the record
    ("auto", True, False, False, "view"),      # --console
    ("auto", False, True, False, "off"),       # --no-console wins over everything
    ("json", None, False, True, "json"),
    ("text", None, False, False, "text"),
    ("off", None, True, False, "off"),
])
def test_console_mode(setting: str, flag: bool | None, init: bool, tty: bool, mode: str) -> None:
    assert console_mode(setting, flag, init, tty) == mode


def test_log_files() -> None:
    assert files_on("auto", False) and not files_on("auto", True)
    assert files_on("on", True) and not files_on("off", False)


def _read(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def test_stdio_tap_keeps_streams_apart_and_prefixes() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    tap = StdioTap(["web", "worker.0"], "text", out=out_w, err=err_w)
    tap.offer([Record(1.0, "web", "stdout", b"listening"), Record(1.0, "worker.0", "stderr", b"warn"),
               Record(1.0, "web", "stdout", b"")])
    tap.raw("stderr", b"herder   | stopping\n")
    assert _read(out_r) == b"web      | listening\nweb      | \n"
    assert _read(err_r) == b"worker.0 | warn\nherder   | stopping\n"
    for fd in (out_r, out_w, err_r, err_w):
        os.close(fd)


def test_stdio_tap_json_lines() -> None:
    out_r, out_w = os.pipe()
    tap = StdioTap(["web.1"], "json", out=out_w, err=out_w)
    tap.offer([Record(0.0, "web.1", "stdout", b"caf\xc3\xa9"), Record(0.0, "web.1", "stderr", b"\xff")])
    a, b = (json.loads(line) for line in _read(out_r).splitlines())
    assert (a["service"], a["instance"], a["stream"], a["line"]) == ("web", "web.1", "stdout", "café")
    assert b["stream"] == "stderr" and b["line"] == "\ufffd" and "line_b64" in b
    os.close(out_r)
    os.close(out_w)


def test_a_gone_reader_ends_that_stream_only() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.close(out_r)                       # nobody reads stdout any more: EPIPE, not a crash
    tap = StdioTap(["web"], "text", out=out_w, err=err_w)
    tap.offer([Record(0.0, "web", "stdout", b"a"), Record(0.0, "web", "stdout", b"b"),
               Record(0.0, "web", "stderr", b"c")])
    tap.offer([Record(0.0, "web", "stdout", b"d")])
    assert tap.broken == {"stdout"} and tap.lost == 3
    assert _read(err_r) == b"web    | c\n"
    for fd in (out_w, err_r, err_w):
        os.close(fd)
