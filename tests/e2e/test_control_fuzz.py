"""Fuzz the API from its own /openapi.json (schemathesis): never a 5xx, and herder still answers.

Over the TCP listener (with its token), which runs the same request path as the Unix
socket. `POST /v1/down` is left out (it would end the run), and `follow` is forced off
so a generated request never waits forever on a stream.
"""

from __future__ import annotations

import socket

import pytest
from ctl_harness import request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.openapi import from_dict  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
SERVICES = """
[services.a]
command = ["sleep", "1000"]
[services.w]
command = ["sleep", "1000"]
replicas = 2
"""


@pytest.fixture
def api(herd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = herd(SERVICES, f'api_tcp = "127.0.0.1:{port}"\napi_token_file = "token"')
    (h.dir / "token").write_text(TOKEN)
    (h.dir / "token").chmod(0o600)
    r = h.up()
    assert r.returncode == 0, r.stderr
    status, doc = request(h.sock, "GET", "/openapi.json")
    assert status == 200
    return h, f"http://127.0.0.1:{port}", from_dict(doc)


def test_fuzz_api_never_answers_5xx(api):
    h, base, schema = api
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path != "/v1/down"]
    strategy = st.one_of(*[op.as_strategy(mode) for op in ops
                           for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])
    seen: list[tuple[str, str, int]] = []

    @settings(max_examples=100, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(case):
        if case.query and "follow" in case.query:
            case.query["follow"] = "false"
        if isinstance(case.body, dict) and "wait" in case.body:
            case.body["wait"] = False
        resp = case.call(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        seen.append((case.method, case.path, resp.status_code))
        assert resp.status_code < 500, (case.method, case.formatted_path, case.query, case.body, resp.text)

    one()
    assert len(seen) >= 50
    status, body = request(h.sock, "GET", "/v1/health")
    assert status == 200 and body["ok"]
    assert h.holder() is not None
