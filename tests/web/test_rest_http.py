"""HTTP rules common to the REST API: slashes, methods, bodies, CORS, Origin (PROTOCOL 2.3-3.1)."""

from __future__ import annotations

import pytest

from support.blab import Person
from support.rest import NOWHERE, PersonFactory, SettingsFactory, call, get
from support.server import LiveServer, live_server

FRONT_END = "http://localhost:3000"


ZERO_ID = "00000000-0000-0000-0000-000000000000"


async def test_get_without_trailing_slash_answers_directly(alice: Person) -> None:
    """Every GET path also answers without its trailing slash, with no redirect."""
    conversation = alice.conversation_id
    for path in (
        "/bots",
        "/limits",
        "/conversations",
        f"/conversations/{conversation}",
        f"/conversations/{conversation}/messages",
    ):
        slashed = await alice.http.get(path + "/")
        bare = await alice.http.get(path)
        assert bare.status_code == 200, path
        assert not bare.has_redirect_location, path
        assert bare.json().keys() == slashed.json().keys(), path


async def test_post_without_trailing_slash_answers_directly(
    server: LiveServer, people: PersonFactory
) -> None:
    """POSTs without the trailing slash create, join and send, keeping their bodies."""
    alice = people(server)
    created = await alice.http.post("/conversations", json={"nickname": "alice"})
    assert created.status_code == 201
    assert created.json()["participants"][0]["name"] == "alice"
    conversation = created.json()["id"]
    bob = people(server)
    joined = await bob.http.post(f"/conversations/{conversation}/join", json={"nickname": "bob"})
    assert joined.status_code == 200
    assert joined.json()["participants"][-1]["name"] == "bob"
    sent = await bob.http.post(
        f"/conversations/{conversation}/messages", json={"type": "T", "text": "hi"}
    )
    assert sent.status_code == 201
    assert sent.json()["text"] == "hi"


async def test_unsupported_method_gets_405_with_drf_body(server: LiveServer) -> None:
    """An unsupported method is refused with 405 and DRF's ``{"detail": ...}`` text."""
    for method, path in [
        ("PUT", "/api/chat/bots/"),
        ("POST", "/api/chat/limits/"),
        ("DELETE", "/api/chat/conversations/"),
        ("PATCH", "/api/chat/conversations"),
        ("PUT", "/api/chat/"),
    ]:
        response = await call(server, method, path)
        assert response.status_code == 405, (method, path)
        assert response.json() == {"detail": f'Method "{method}" not allowed.', "code": "method"}


async def test_a_405_names_every_method_of_the_path(server: LiveServer) -> None:
    """``Allow`` lists all the methods the path serves (RFC 9110), not only those of the
    first route registered for it."""
    for method, path, allowed in [
        ("PUT", "/api/chat/conversations/", {"GET", "HEAD", "POST"}),
        ("DELETE", "/api/chat/conversations", {"GET", "HEAD", "POST"}),
        ("OPTIONS", "/api/chat/bots/", {"GET", "HEAD"}),
        ("GET", f"/api/chat/conversations/{ZERO_ID}/join/", {"POST"}),
        ("PUT", f"/api/chat/conversations/{ZERO_ID}/messages/", {"GET", "HEAD", "POST"}),
    ]:
        response = await call(server, method, path)
        assert response.status_code == 405, (method, path)
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, path
    static = await call(server, "PUT", "/static/index.html")  # StaticFiles' own 405
    assert static.status_code == 405
    assert static.headers.get("allow", "GET") != ""  # never "allows nothing"


async def test_unsupported_method_on_a_conversation_gets_405(alice: Person) -> None:
    """DELETE of a conversation and GET of join are refused with 405, not 404."""
    conversation = alice.conversation_id
    deleted = await alice.http.delete(f"/conversations/{conversation}/")
    assert deleted.status_code == 405
    assert deleted.json()["detail"] == 'Method "DELETE" not allowed.'
    fetched = await alice.http.get(f"/conversations/{conversation}/join/")
    assert fetched.status_code == 405
    assert fetched.json()["detail"] == 'Method "GET" not allowed.'


async def test_head_works_where_get_does(alice: Person) -> None:
    """HEAD answers 200 with no body on every GET endpoint, slashed or not."""
    conversation = alice.conversation_id
    for path in (
        "/",
        "/bots/",
        "/limits/",
        "/conversations/",
        f"/conversations/{conversation}/",
        f"/conversations/{conversation}/messages/",
        "/bots",
        f"/conversations/{conversation}/messages",
    ):
        response = await alice.http.head(path)
        assert response.status_code == 200, path
        assert response.content == b"", path
        assert response.headers["content-type"] == "application/json", path


async def test_head_keeps_the_get_rules(server: LiveServer) -> None:
    """HEAD of a history the session may not read is refused like GET (403)."""
    response = await call(server, "HEAD", f"/api/chat/conversations/{NOWHERE}/messages/")
    assert response.status_code == 403


async def test_json_whatever_the_accept_header(server: LiveServer) -> None:
    """Responses are JSON with and without ``Accept`` (no HTML rendering)."""
    for accept in (None, "application/json, */*", "*/*", "text/html"):
        headers = {"Accept": accept} if accept else {}
        response = await get(server, "/api/chat/bots/", headers=headers)
        assert response.status_code == 200, accept
        assert response.headers["content-type"] == "application/json", accept
        assert response.json()["results"], accept


async def test_authorization_header_is_ignored(server: LiveServer) -> None:
    """Basic credentials (right or wrong) change nothing: there are no user accounts."""
    response = await get(server, "/api/chat/bots/", headers={"Authorization": "Basic eDp5"})
    assert response.status_code == 200
    created = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={"nickname": "x"},
        headers={"Authorization": "Basic eDp5"},
    )
    assert created.status_code == 201


async def test_no_csrf_token_needed_for_posts(alice: Person) -> None:
    """JSON and multipart POSTs succeed without any CSRF token or header."""
    sent = await alice.post(type="T", text="plain")
    assert sent.status_code == 201
    multipart = await alice.http.post(
        f"/conversations/{alice.conversation_id}/messages/",
        files={"type": (None, "T"), "text": (None, "multi")},
    )
    assert multipart.status_code == 201
    assert multipart.json()["text"] == "multi"


async def test_create_accepts_form_and_multipart(server: LiveServer) -> None:
    """Conversation endpoints take form-urlencoded and multipart bodies too."""
    form = await call(server, "POST", "/api/chat/conversations/", data={"nickname": "formy"})
    assert form.status_code == 201
    assert form.json()["participants"][0]["name"] == "formy"
    multipart = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        files={"nickname": (None, "multi"), "name": (None, "room")},
    )
    assert multipart.status_code == 201
    assert multipart.json()["name"] == "room"
    assert multipart.json()["participants"][0]["name"] == "multi"


async def test_messages_refuse_other_media_types(alice: Person) -> None:
    """The messages endpoint takes only JSON and multipart: 415 with DRF's text otherwise."""
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "application/xml"):
        response = await alice.http.post(
            f"/conversations/{alice.conversation_id}/messages/",
            content=b"type=T&text=hi",
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 415, content_type
        assert response.json()["detail"] == (
            f'Unsupported media type "{content_type}" in request.'
        ), content_type
    assert (await alice.history()).json()["count"] == 2  # created, ECHO joined


async def test_create_refuses_unknown_media_type(server: LiveServer) -> None:
    """A create body in an unknown media type is refused with 415."""
    response = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        content=b"<x/>",
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 415
    assert response.json()["detail"] == 'Unsupported media type "application/xml" in request.'


async def test_malformed_json_is_a_400_parse_error(alice: Person) -> None:
    """Malformed JSON gets 400 ``{"detail": "JSON parse error - ..."}`` on every endpoint."""
    for path in ("/conversations/", f"/conversations/{alice.conversation_id}/messages/"):
        response = await alice.http.post(
            path, content=b'{"type": ', headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, path
        assert response.json()["detail"].startswith("JSON parse error - "), path


async def test_json_that_is_not_an_object_is_a_400(alice: Person) -> None:
    """A JSON body that is not an object gets DRF's ``non_field_errors``."""
    for body, kind in ((b"[1, 2]", "list"), (b'"x"', "str"), (b"5", "int"), (b"null", "NoneType")):
        for path in ("/conversations/", f"/conversations/{alice.conversation_id}/messages/"):
            response = await alice.http.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400, (path, body)
            if kind != "NoneType":
                assert response.json()["non_field_errors"] == [
                    f"Invalid data. Expected a dictionary, but got {kind}."
                ], (path, body)


async def test_empty_create_body_is_an_empty_object(server: LiveServer) -> None:
    """A create with no body at all works like ``{}``."""
    response = await call(server, "POST", "/api/chat/conversations/")
    assert response.status_code == 201
    assert response.json()["name"] is None


# -- CORS and Origin ------------------------------------------------------------------


@pytest.fixture
async def cors_server(make_settings: SettingsFactory) -> LiveServer:
    """A server that allows the front end's development origin."""
    async with live_server(make_settings(allowed_origins=[FRONT_END])) as running:
        yield running  # type: ignore[misc]


async def test_cors_preflight_for_a_configured_origin(cors_server: LiveServer) -> None:
    """A preflight from a configured origin gets 200 with the front end's headers."""
    response = await call(
        cors_server,
        "OPTIONS",
        "/api/chat/conversations/",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    headers = response.headers
    assert headers["access-control-allow-origin"] == FRONT_END
    assert headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "HEAD", "POST", "OPTIONS", "PATCH"}, "what some route serves"
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert "content-type" in allowed
    assert headers["access-control-max-age"] == "86400"


@pytest.mark.parametrize(
    ("asked", "detail"),
    [
        (
            {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-evil"},
            "Disallowed CORS headers",
        ),
        ({"Access-Control-Request-Method": "TRACE"}, "Disallowed CORS method"),
    ],
)
async def test_a_refused_preflight_answers_in_the_json_error_shape(
    cors_server: LiveServer, asked: dict[str, str], detail: str
) -> None:
    """Before: Starlette's plain text ("Disallowed CORS headers"), unlike every other 4xx."""
    response = await call(
        cors_server, "OPTIONS", "/api/chat/conversations/", headers={"Origin": FRONT_END, **asked}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": detail, "code": "cors"}
    assert response.headers["access-control-allow-origin"] == FRONT_END


async def test_cors_headers_on_responses_to_a_configured_origin(cors_server: LiveServer) -> None:
    """Simple and credentialed requests from a configured origin get its CORS headers."""
    response = await get(cors_server, "/api/chat/bots/", headers={"Origin": FRONT_END})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert response.headers["access-control-allow-credentials"] == "true"
    created = await call(
        cors_server,
        "POST",
        "/api/chat/conversations/",
        json={"nickname": "front"},
        headers={"Origin": FRONT_END},
    )
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == FRONT_END
    assert created.headers["access-control-allow-credentials"] == "true"


async def test_no_cors_headers_for_other_origins(cors_server: LiveServer) -> None:
    """An unlisted origin gets no CORS headers, on preflights or on plain requests."""
    preflight = await call(
        cors_server,
        "OPTIONS",
        "/api/chat/conversations/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code != 200 or "access-control-allow-origin" not in preflight.headers
    response = await get(cors_server, "/api/chat/bots/", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    for headers in (preflight.headers, response.headers):
        assert not [k for k in headers if k.lower().startswith("access-control-")]


async def test_no_cors_headers_when_no_origin_is_configured(server: LiveServer) -> None:
    """Without configured origins, even the front end's origin gets no CORS headers."""
    response = await get(server, "/api/chat/bots/", headers={"Origin": FRONT_END})
    assert response.status_code == 200
    assert not [k for k in response.headers if k.lower().startswith("access-control-")]


async def test_post_from_a_foreign_origin_is_refused(server: LiveServer) -> None:
    """A state-changing request whose ``Origin`` is foreign gets 403 and changes nothing."""
    response = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={"nickname": "mallory"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["detail"]
    assert "set-cookie" not in response.headers
    listed = await get(server, "/api/chat/conversations/")
    assert listed.json()["count"] == 0


async def test_post_from_own_origin_or_without_origin_passes(server: LiveServer) -> None:
    """POSTs with no ``Origin``, or the server's own origin, are accepted."""
    own = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={"nickname": "own"},
        headers={"Origin": server.base_url},
    )
    assert own.status_code == 201
    none = await call(server, "POST", "/api/chat/conversations/", json={"nickname": "none"})
    assert none.status_code == 201


async def test_post_from_a_configured_origin_passes(cors_server: LiveServer) -> None:
    """A configured front-end origin may POST; a foreign one still may not."""
    ok = await call(
        cors_server,
        "POST",
        "/api/chat/conversations/",
        json={},
        headers={"Origin": FRONT_END},
    )
    assert ok.status_code == 201
    refused = await call(
        cors_server,
        "POST",
        "/api/chat/conversations/",
        json={},
        headers={"Origin": "http://localhost:3001"},
    )
    assert refused.status_code == 403


async def test_foreign_origin_may_still_read(server: LiveServer) -> None:
    """The Origin check guards state changes only: a GET from anywhere is answered."""
    response = await get(server, "/api/chat/bots/", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
