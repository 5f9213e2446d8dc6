"""Exported units pass `systemd-analyze verify` with an empty stderr (exit 0 alone is not
enough: unknown keys and bad values are only warnings), and render as documented.
The running behaviour is tested in a booted systemd: tests/platform/test_export_nspawn.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from export_cases import exported

from herder.export import REPORT_FILE


@pytest.mark.parametrize("config", ["shop", "full"])
def test_units_verify_clean(config: str, tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    files = {n: t for n, t in exported(config, "systemd").files.items() if n != REPORT_FILE}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in files)],
                         capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stderr) == (0, ""), res.stderr


def test_full_units_map_as_documented() -> None:
    files = exported("full", "systemd").files
    api = files["full-api@.service"]
    for line in ("Wants=full-db.service", "PartOf=full-db.service", "Requires=full-migrate@0.service",
                 "Requires=full-migrate@1.service",
                 "Wants=full-cache.service", "After=full-search.service", "PartOf=full.target",
                 "KillMode=mixed", "KillSignal=SIGQUIT", "TimeoutStopSec=7500ms", "SuccessExitStatus=3",
                 "MemoryMax=1G", "CPUQuota=150%", "LimitNOFILE=8192", "LimitNPROC=256", "LimitCORE=infinity",
                 "User=1000", "Group=1000", "TimeoutStartSec=infinity", 'Environment="PORT=80%i"',
                 "WorkingDirectory=@BASE@/srv/%i", 'Environment="PRICE=$5 $(HOME) 100%%"'):
        assert line.replace("@BASE@", str(exported("full", "systemd").project.base)) in api, line
    migrate = files["full-migrate@.service"]
    assert "Type=oneshot\nRemainAfterExit=yes" in migrate
    assert "Restart=on-failure" in migrate
    cache = files["full-cache.service"]
    assert "Type=notify" in cache and "WatchdogSec=10s" in cache
    assert f"ExecStart={exported('full', 'systemd').project.base}/bin/cache --port 6379" in cache
    assert "{replica}" not in "".join(t for n, t in files.items() if n != REPORT_FILE)
    assert 'Environment="SLOT=0"' in files["full-Odd_Name.service"]
    target = files["full.target"]
    assert "Wants=full-api@2.service" in target and "migrate" not in target and "Odd_Name" not in target


def test_hooks_security_and_exit_code_policies_map_to_their_directives() -> None:
    result = exported("full", "systemd")
    base = str(result.project.base)
    web = result.files["full-web.service"]
    for line in (f"ExecStartPre={base}/bin/cache --migrate", f"ExecStartPost={base}/bin/cache --lb-add",
                 f"ExecStop={base}/bin/cache --drain", "ExecStopPost=+rm -f /run/web.sock",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "UMask=0027", "PrivateTmp=yes", "ReadOnlyPaths=/usr"):
        assert line + "\n" in web, line
    assert web.index("ExecStart=") < web.index("ExecStartPre=")      # systemd runs them in its own order
    nightly = result.files["full-nightly.service"]
    assert "RestartPreventExitStatus=78\n" in nightly and "RestartForceExitStatus=0\n" in nightly
    notes = {n.key: n for n in result.report.of("web")}
    assert notes["hooks.pre_stop"].status == "approximated" and "TimeoutStopSec=" in notes["hooks.pre_stop"].text
    assert notes["security.capabilities"].status == "carried"
    assert notes["restart_schedule"].status == "carried" and "try-restart" in notes["restart_schedule"].text
