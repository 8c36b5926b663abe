"""The REST API fuzzed from its own OpenAPI schema with schemathesis: whatever a client sends,
valid or not, no operation answers 5xx (issue 9, "make it systematic").

In-process through the ASGI transport, against the test archive (hostile messages included)
plus a few more hostile ones, as an admin (sees everything) and as a user (whose own
addresses join every query). Schemathesis runs its phases for each operation: the schema's
examples, the coverage phase (boundary and wrong-type values: offset=2**63, limit=0, a
string for an integer) and random fuzzing, positive and negative. Derandomized with a
bounded number of examples: the same requests on every run, in a few seconds.

The schema is loaded when the module is imported, before any archive exists, because
schemathesis's pytest integration reads it at collection time (its fixture-based loader,
``schemathesis.pytest.from_fixture``, does not run under pytest 9: it sets
``Node._nodeid``, which pytest 9.2 no longer has). It comes from the API's own router, and
``test_the_fuzzed_schema_is_the_served_one`` checks that it is what the app serves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from postfix_archiver.envelope import Envelope
from postfix_archiver.web import api, holds, restore

from .web_helpers import Web

MORE_HOSTILE = [
    # a NUL, 8-bit bytes, a lone CR, a header line of 10,000 characters, a year past 9999
    b"From: nul\x00@example.com\r\nTo: bob@example.com\r\nSubject: caf\xe9 \x00\r\r\n"
    b"Date: Fri, 31 Dec 9999 23:59:59 -1200\r\n"
    b"X-Long: " + b"x" * 10_000 + b"\r\n\r\nbody\x00\xff\r\n",
    # a broken MIME structure, unknown charsets, an attachment named by RFC 2231 with a NUL
    b"From: =?x-unknown?q?=FF?= <odd@example.com>\r\nTo: bob@example.com\r\n"
    b"Subject: =?utf-8?b?////?=\r\nDate: 30 Feb 2025 25:61:61 +9999\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename*=x-unknown''%FF%00.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
]


def _api_schema() -> dict[str, Any]:
    app = FastAPI()
    app.include_router(api.router)
    app.include_router(holds.api_router)  # the app serves these under /api/v1
    app.include_router(restore.api_router)  # restore not configured here: its input checks
    return app.openapi()


schema = schemathesis.openapi.from_dict(_api_schema())
# the archive ids of the test messages (web_helpers' cast, then MORE_HOSTILE)
ARCHIVED_IDS = [str(n) for n in range(1, 7)]


@schema.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    # a random string is almost never an archived id: half the time, name a real message,
    # so the hostile ones are read back through every route that takes an id
    return st.one_of(st.tuples(strategy, st.sampled_from(ARCHIVED_IDS)).map(_real_id), strategy)


def _real_id(pair: tuple[Any, str]) -> Any:
    generated, ident = pair
    if isinstance(generated, dict) and "ident" in generated:
        return {**generated, "ident": ident}
    return generated  # None or no id: nothing to replace


FUZZ = settings(
    max_examples=20,
    derandomize=True,  # the same requests on every run: CI stays stable
    database=None,
    deadline=None,
    # health checks judge how efficiently data is generated, not the API; and one archive
    # per operation, shared by its examples, is the point of the function-scoped fixture
    suppress_health_check=list(HealthCheck),
)


class Target:
    def __init__(self, web: Web, name: str) -> None:
        _, secret = web.accounts.create_token(name, "fuzz")
        self.app = web.app
        self.headers = {"Authorization": f"Bearer {secret}"}

    def check(self, case: Any) -> None:
        response = case.call(app=self.app, headers=self.headers)
        case.validate_response(response, checks=[not_a_server_error])


@pytest.fixture
def hostile_web(web: Web) -> Web:
    when = datetime(2025, 1, 7, 10, tzinfo=UTC)
    ids = [
        web.archive.ingest(raw, Envelope("x@example.com", ("bob@example.com",), received=when)).id
        for raw in MORE_HOSTILE
    ]
    assert sorted([*web.cast.raws, *ids]) == [int(i) for i in ARCHIVED_IDS]
    return web


@pytest.fixture
def admin(hostile_web: Web) -> Target:
    return Target(hostile_web, "admin")


@pytest.fixture
def user(hostile_web: Web) -> Target:
    return Target(hostile_web, "bob")


@schema.parametrize()
@FUZZ
def test_no_operation_answers_5xx_to_an_admin(case: Any, admin: Target) -> None:
    admin.check(case)


@schema.parametrize()
@FUZZ
def test_no_operation_answers_5xx_to_a_user(case: Any, user: Target) -> None:
    user.check(case)


@pytest.mark.parametrize("name", ["admin", "bob"])
def test_every_message_through_every_route_that_takes_an_id(hostile_web: Web, name: str) -> None:
    """The fuzzer names a real id only now and then: here every archived message goes
    through every operation of the schema that takes one, each attachment index included."""
    target = Target(hostile_web, name)
    client = hostile_web.client(raise_server_exceptions=False)
    paths = [p for p in _api_schema()["paths"] if "{ident}" in p]
    assert len(paths) == 5
    urls = {
        path.replace("{ident}", ident).replace("{index}", str(index))
        for ident in ARCHIVED_IDS
        for path in paths
        for index in range(-1, 6)
    }
    for url in sorted(urls):
        response = client.get(url, headers=target.headers)
        assert response.status_code < 500, (url, response.status_code, response.text)


def test_the_fuzzed_schema_is_the_served_one(web: Web) -> None:
    _, secret = web.accounts.create_token("bob", "schema")
    client = web.client()
    served = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {secret}"})
    fuzzed = _api_schema()
    assert served.json()["paths"] == fuzzed["paths"]
    assert served.json()["components"] == fuzzed["components"]
    assert len(fuzzed["paths"]) >= 7  # every operation is fuzzed, not an empty schema
