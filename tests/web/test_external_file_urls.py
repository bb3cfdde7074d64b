"""``external_file_url`` over REST: every URL a client may send gets a 201 or a 400, never
a 500, and the ``file_name`` made from it is safe to store and show (domain/inputs.py,
chats.py)."""

from __future__ import annotations

from support.blab import Person


async def test_a_malformed_url_host_is_a_400(alice: Person) -> None:
    """``http://[::1/x.pdf`` (an unclosed IPv6 bracket) and ``http://[zz]/x`` are refused with
    400 ``Enter a valid URL.``, like any other invalid URL. (Before: 500 over REST, and an
    ``internal`` error frame over the socket.)"""
    for url in (
        "http://[::1/x.pdf",
        "http://[zz]/x.pdf",
        "https://a]b/x.pdf",
        "http://x:99999999/f.pdf",
        "https://user@/f.pdf",
    ):
        response = await alice.post(type="A", external_file_url=url)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["external_file_url"] == ["Enter a valid URL."], url


async def test_the_file_name_of_an_external_url_is_made_safe(alice: Person) -> None:
    """An external URL whose last segment percent-decodes to NUL or control characters is
    stored (201) with a ``file_name`` free of them, on every database. (Before: 500 on
    PostgreSQL for ``%00``, which cannot be stored in text; ``\\r\\n\\x1b`` kept in the name
    on both.)"""
    for url, name in (
        ("https://example.com/a%00b.pdf", "ab.pdf"),
        ("https://example.com/r%0d%0a%1bc.pdf?x=1", "rc.pdf"),
        ("https://example.com/dir/..%2F..%2Fsecret.txt", "secret.txt"),
    ):
        response = await alice.post(type="A", external_file_url=url)
        assert response.status_code == 201, (url, response.text)
        assert response.json()["file_name"] == name, url
        assert response.json()["file_url"] == url
