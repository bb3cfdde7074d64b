"""The API root, ``bots/``, ``limits/`` and the OpenAPI document (PROTOCOL 3.2-3.4, A.1 1-2)."""

from __future__ import annotations

import httpx

from support.rest import SettingsFactory, get
from support.server import LiveServer, live_server
from tertulia.settings import LIMIT_KEYS


async def test_api_root_links_to_conversations(server: LiveServer) -> None:
    """The API root answers with the absolute URL of the conversations collection, and
    whether they are listed to anyone (``rooms``, an extension; on by default)."""
    response = await get(server, "/api/chat/")
    assert response.status_code == 200
    assert response.json() == {
        "conversations": f"{server.base_url}/api/chat/conversations/",
        "rooms": True,
    }


async def test_bots_lists_installed_names_in_settings_order(server: LiveServer) -> None:
    """``bots/`` is ``{"results": [...]}`` with the installed names, and nothing else."""
    response = await get(server, "/api/chat/bots/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"results": ["ECHO", "Calculator"]}


async def test_bots_ignores_limit_and_page(server: LiveServer) -> None:
    """The lobby's ``?limit=1000&page=1`` (and other values) gets the very same list."""
    plain = (await get(server, "/api/chat/bots/")).json()
    for query in ("?limit=100&page=1", "?limit=1000&page=1", "?page=2", "?page_size=1"):
        response = await get(server, f"/api/chat/bots/{query}")
        assert response.status_code == 200, query
        assert response.json() == plain, query


async def test_bots_omits_the_manager(make_settings: SettingsFactory) -> None:
    """The manager bot is not offered in ``bots/`` (PROTOCOL 9 #24)."""
    settings = make_settings(manager="Calculator")
    async with live_server(settings) as server:
        response = await get(server, "/api/chat/bots/")
    assert response.json() == {"results": ["ECHO"]}


async def test_limits_has_exactly_the_five_keys(server: LiveServer) -> None:
    """``limits/`` reports the five byte limits as integers, nothing more."""
    response = await get(server, "/api/chat/limits/")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == list(LIMIT_KEYS)
    assert body["MAX_VIDEO_SIZE"] == 25 * 1024 * 1024
    assert all(isinstance(v, int) for v in body.values())


async def test_limits_left_out_keep_their_defaults(make_settings: SettingsFactory) -> None:
    """The limits reported are those set (0 disables a kind) and, for the kinds the
    settings leave out, the defaults: setting one limit does not refuse every other kind
    (BLAB's CHAT_LIMITS counted a missing key as 0)."""
    settings = make_settings(limits={"MAX_IMAGE_SIZE": 1000, "MAX_VOICE_SIZE": 0})
    async with live_server(settings) as server:
        response = await get(server, "/api/chat/limits/")
    assert response.json() == {
        "MAX_ATTACHMENT_SIZE": 15 * 1024 * 1024,
        "MAX_IMAGE_SIZE": 1000,
        "MAX_VIDEO_SIZE": 25 * 1024 * 1024,
        "MAX_AUDIO_SIZE": 15 * 1024 * 1024,
        "MAX_VOICE_SIZE": 0,
    }


async def test_openapi_document_lists_the_endpoints(server: LiveServer) -> None:
    """The OpenAPI document names every REST endpoint with its method, once (slashed form)."""
    response = await get(server, "/api/chat/_docs/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/chat/": {"get"},
        "/api/chat/bots/": {"get"},
        "/api/chat/limits/": {"get"},
        "/api/chat/conversations/": {"get", "post"},
        "/api/chat/conversations/{conversation_id}/": {"get"},
        "/api/chat/conversations/{conversation_id}/join/": {"post"},
        "/api/chat/conversations/{conversation_id}/messages/": {"get", "post"},
        "/api/chat/conversations/{conversation_id}/participants/{participant_id}/": {"patch"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert not [p for p in paths if p.startswith("/api/chat/") and not p.endswith("/")]


async def test_openapi_document_has_the_real_shapes(server: LiveServer) -> None:
    """Response and request schemas match the wire: limits an object, ids and pages as sent."""
    doc = (await get(server, "/api/chat/_docs/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def response_schema(path: str, method: str, status: str) -> dict:  # type: ignore[type-arg]
        content = doc["paths"][path][method]["responses"][status]["content"]
        schema: dict = content["application/json"]["schema"]  # type: ignore[type-arg]
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    limits = response_schema("/api/chat/limits/", "get", "200")
    assert limits["type"] == "object"
    assert set(limits["properties"]) == set(LIMIT_KEYS)
    bots = response_schema("/api/chat/bots/", "get", "200")
    assert set(bots["properties"]) == {"results"}

    created = response_schema("/api/chat/conversations/", "post", "201")
    assert {"id", "name", "created_at", "participants", "my_participant_id"} <= set(
        created["properties"]
    )
    participant = schemas["ParticipantOut"]
    assert set(participant["properties"]) == {"id", "name", "type"}

    page = response_schema("/api/chat/conversations/{conversation_id}/messages/", "get", "200")
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    message = schemas["MessageOut"]
    assert {"type", "time", "id", "sent_by_human", "options"} <= set(message["required"])

    listed = response_schema("/api/chat/conversations/", "get", "200")
    assert set(listed["properties"]) == {"count", "next", "previous", "results"}
    summary = schemas["ConversationSummary"]
    assert {"participant_count", "my_participant_id"} <= set(summary["properties"])

    history = doc["paths"]["/api/chat/conversations/{conversation_id}/messages/"]["get"]
    assert {"until", "since", "limit", "page"} <= {p["name"] for p in history["parameters"]}

    create = doc["paths"]["/api/chat/conversations/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(create)
    post = doc["paths"]["/api/chat/conversations/{conversation_id}/messages/"]["post"]
    assert "application/x-www-form-urlencoded" not in post["requestBody"]["content"]


async def test_docs_pages_are_served(server: LiveServer) -> None:
    """The documentation pages answer ``GET`` and ``HEAD`` (a link checker's, a monitor's),
    with and without the trailing slash, as every other path under ``/api/chat/`` does."""
    paths = [
        "/api/chat/_docs/",
        "/api/chat/_docs",
        "/api/chat/_docs/redoc/",
        "/api/chat/_docs/redoc",
    ]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for path in paths:
            page = await client.get(path)
            head = await client.head(path)
            assert page.status_code == 200, path
            assert "text/html" in page.headers["content-type"]
            assert "openapi.json" in page.text
            assert head.status_code == 200, path
            assert head.headers["content-type"] == page.headers["content-type"]
            assert head.content == b""


async def test_openapi_document_promises_no_422(server: LiveServer) -> None:
    """Invalid input is answered 400 in Tertulia's shapes; FastAPI's own 422 (listed on every
    route with parameters) never comes, so the document does not name it."""
    doc = (await get(server, "/api/chat/_docs/openapi.json")).json()
    promised = [
        (path, method)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "422" in operation["responses"]
    ]
    assert promised == []
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])
    history = doc["paths"]["/api/chat/conversations/{conversation_id}/messages/"]["get"]
    assert "400" in history["responses"]
    invalid = await get(server, "/api/chat/conversations/?mine=maybe")
    assert invalid.status_code == 400


async def test_openapi_document_names_every_status_and_body_the_server_gives(
    server: LiveServer,
) -> None:
    """What a client can get back is documented: a repeated ``local_id`` answers 200, bodies
    of another type 415, oversized ones 413, throttled senders 429; rename takes JSON or
    multipart, not a urlencoded form (it answers that with 415)."""
    paths = (await get(server, "/api/chat/_docs/openapi.json")).json()["paths"]
    post = paths["/api/chat/conversations/{conversation_id}/messages/"]["post"]
    assert {"200", "201", "413", "415", "429"} <= set(post["responses"])
    for path in ("/api/chat/conversations/", "/api/chat/conversations/{conversation_id}/join/"):
        assert {"413", "415", "429"} <= set(paths[path]["post"]["responses"]), path
    rename = paths["/api/chat/conversations/{conversation_id}/participants/{participant_id}/"]
    assert {"413", "415"} <= set(rename["patch"]["responses"])
    assert set(rename["patch"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    listing = paths["/api/chat/conversations/"]["get"]["responses"]
    assert "415" not in listing  # no body, no media type to refuse
    # (docs QA 3: no route named 503 or 409) any route may meet an outage or a Host not
    # allowed; a write, a concurrent one that won
    for path, operations in paths.items():
        for method, operation in operations.items():
            expected = {"400", "503"} | ({"409"} if method in ("post", "patch") else set())
            assert expected <= set(operation["responses"]), (path, method)
