"""The docs the operator found wrong (issue 17, item 7) stay true: each claim is checked
against the code it describes, so the next change to one side fails here."""

from __future__ import annotations

import re
from pathlib import Path

from herder.control.registry import COMMANDS
from herder.health.probes import BODY_LIMIT

DOCS = Path(__file__).resolve().parents[2] / "docs"
README = DOCS.parent / "README.md"


def test_api_md_lists_every_endpoint_of_the_registry_and_no_other() -> None:
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^`?\[ ]*)", text, re.M))
    for base in re.findall(r"^\| `POST (/v1/services/\{name\}/)start` · `stop` · `restart`", text, re.M):
        documented |= {("POST", base + verb) for verb in ("start", "stop", "restart")}
    served = {(c.method, c.path) for c in COMMANDS}
    assert served <= documented, f"missing from docs/api.md: {sorted(served - documented)}"
    assert documented <= served, f"docs/api.md names what is not served: {sorted(documented - served)}"


def test_health_md_states_the_body_limit_the_probe_uses() -> None:
    text = (DOCS / "health.md").read_text()
    assert BODY_LIMIT == 1024 * 1024 and "at most its first **1 MiB**" in text
    assert "64 KiB" not in text


def test_no_misspelt_example_and_no_false_promise() -> None:
    assert "--restart allways" not in (DOCS / "install.md").read_text().replace(
        "so `--restart allways` is refused", "")
    readme = README.read_text()
    assert "Nothing herder started outlives it" not in readme   # false after kill -9 of herder
    assert "`kill -9`" in readme and "## Install" in readme and "pipx install ." in readme
