"""The specs the render tests use: each golden file is rendered from one of these."""

from __future__ import annotations

from herder.config.model import Backoff, Logs, ServiceSpec, StartLimit
from herder.platform.spec import InstallSpec

PY = "/usr/bin/python3"


def specs() -> dict[str, InstallSpec]:
    plain = ServiceSpec(command=(PY, "-m", "http.server", "8000"))
    full = ServiceSpec(
        command=(PY, "-c", 'print("50% of $HOME")', "two words"),
        cwd="/srv/app dir",
        env={"PORT": "8000", "GREETING": 'say "hi" 100%'},
        user="daemon", group="daemon", restart="always",
        success_exit_codes=(0, 3),
        backoff=Backoff(initial=0.5, factor=3.0, max=60.0, jitter=0.0, reset_after=120.0),
        start_limit=StartLimit(burst=3, interval=30.0),
        stop_signal="SIGINT", stop_timeout=25.0, kill="main", reload_signal="SIGUSR1",
        depends_on={"db": "started", "cache.service": "started"}, bind=True,
        logs=Logs(stderr="auto"))
    never = ServiceSpec(command=(PY, "worker.py"), restart="never", cwd="/opt/w")
    herder = ServiceSpec(command=(PY, "-m", "herder", "up", "-c", "/etc/herder/herder.toml"), cwd="/etc/herder",
                         backoff=Backoff(initial=1.0, factor=2.0, max=30.0, jitter=0.0), stop_timeout=70.0,
                         start_limit=StartLimit(burst=5, interval=120.0))
    return {
        "plain": InstallSpec("web", plain),
        "full": InstallSpec("api", full, description="The API", start="delayed", log_dir="/var/log/api",
                            account="NetworkService"),
        "notify-manual": InstallSpec("napp", never, notify=True, start="manual", hardening=False),
        "disabled-user": InstallSpec("mine", plain, scope="user", start="disabled"),
        "supervisor": InstallSpec("herder", herder, kind="supervisor", notify=True, state_dir="/var/lib/herder",
                                  watchdog=30.0, description="herder supervisor for /etc/herder/herder.toml"),
        "supervisor-user": InstallSpec("herder", herder, kind="supervisor", scope="user", notify=True,
                                       watchdog=30.0, description="herder supervisor for /etc/herder/herder.toml"),
    }
