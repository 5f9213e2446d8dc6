"""Where alerts go: apprise URLs (imported only when a config has one) and `exec:` commands.

apprise (https://github.com/caronc/apprise) is the notification library of the field: one
URL syntax for Slack, Teams, Telegram, e-mail, ntfy, Discord, generic JSON/form webhooks
and ~100 more, maintained and packaged. It is imported lazily (it costs ~0.3 s and pulls
requests), so only a supervisor with apprise targets, or `herder check` of such a config,
pays for it. Its `notify` is blocking I/O: the delivery calls it in a worker thread.

An `exec:` target is run with the alert in its environment (HERDER_ALERT_TITLE,
HERDER_ALERT_BODY, HERDER_ALERT_CONDITION, HERDER_ALERT_INSTANCE, HERDER_ALERT_RESOLVED,
HERDER_ALERT_JSON); exit 0 is a delivery.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import warnings
from types import ModuleType
from typing import Any


def is_exec(target: str) -> bool:
    return target.startswith("exec:")


def exec_argv(target: str) -> tuple[str, ...]:
    return tuple(shlex.split(target[5:]))


def problems(targets: tuple[str, ...]) -> list[str]:
    """What apprise says about the URLs (loaded only if there are any)."""
    urls = [t for t in targets if not is_exec(t)]
    if not urls:
        return []
    try:
        apprise = _apprise()
    except ImportError:
        return ["apprise is not installed, so only exec: targets can be used; expected `pip install apprise`"]
    out = []
    for url in urls:
        with _quiet():
            plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            out.append(f'"{url}": apprise cannot use this URL (unknown scheme or missing parts); expected a URL '
                       "as listed at https://github.com/caronc/apprise/wiki (json://host:port/path, slack://…)")
    return out


def _apprise() -> ModuleType:
    """apprise, imported on first use. Its PGP support (loaded with its plugins, later)
    imports imghdr, deprecated since Python 3.11: imported here once, quietly, it is cached."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.suppress(ImportError):
            import imghdr  # noqa: F401
        import apprise
    return apprise


@contextlib.contextmanager
def _quiet() -> Any:
    log = logging.getLogger("apprise")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


class AppriseTarget:
    """One apprise URL; `send` blocks (call it from a worker thread)."""

    def __init__(self, url: str) -> None:
        apprise = _apprise()
        self.url = url
        self._apprise = apprise.Apprise()
        with _quiet():
            self._apprise.add(url)

    @property
    def label(self) -> str:
        return self.url.split("://", 1)[0] + "://" + self.url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]

    def send(self, title: str, body: str, failure: bool) -> str:
        """"" when delivered, else why not."""
        apprise = _apprise()

        kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
        with apprise.LogCapture(level=logging.WARNING) as logs:
            ok = self._apprise.notify(body=body, title=title, notify_type=kind)
        if ok:
            return ""
        text = logs.getvalue().strip().splitlines() if hasattr(logs, "getvalue") else []
        last = text[-1].split(" - ", 2)[-1] if text else "apprise reported a failure"
        return last
