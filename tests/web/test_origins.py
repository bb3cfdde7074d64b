"""Which ``Origin`` may change state or open a socket (web/origins.py), and which may be
configured (settings ``allowed_origins``)."""

from __future__ import annotations

import pytest

from tertulia.errors import ConfigurationError
from tertulia.settings import load_settings
from tertulia.web.origins import Origins, normalized


def test_origins_compare_as_browsers_form_them() -> None:
    assert normalized("HTTPS://Chat.Example.com:443/") == "https://chat.example.com"
    assert normalized("http://chat.example.com:80") == "http://chat.example.com"
    assert normalized("http://chat.example.com:443") == "http://chat.example.com:443"
    assert normalized("http://[::1]:80") == "http://[::1]"
    assert normalized("null") == "null"


def test_own_configured_and_no_origin_are_allowed_and_nothing_else() -> None:
    origins = Origins(["https://app.example.com/"])
    host = "chat.example.com"
    assert origins.allow(None, host)
    assert origins.allow("https://chat.example.com", host)
    assert origins.allow("https://chat.example.com:443", host)  # (was refused)
    assert origins.allow("http://chat.example.com", host)
    assert origins.allow("https://APP.example.com", host)
    assert not origins.allow("null", host)
    assert not origins.allow("https://chat.example.com.evil.example", host)
    assert not origins.allow("https://chat.example.com:8443", host)
    assert Origins([]).allow("http://127.0.0.1:8000", "127.0.0.1:8000")


@pytest.mark.parametrize(
    "origin", ["*", "app.example.com", "https://app.example.com/path", "ftp://x", "https://"]
)
def test_a_wildcard_or_anything_but_an_origin_is_refused_in_the_settings(origin: str) -> None:
    """``*`` with the cookie-carrying CORS Tertulia sends would let any site act for people."""
    with pytest.raises(ConfigurationError, match="allowed_origins"):
        load_settings(None, allowed_origins=[origin])
