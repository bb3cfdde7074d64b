"""Which ``external_file_url`` values a message may carry (domain/inputs.py): the URLs the
original's validator (Django's) refused are refused, with its text; before, any string
``urlsplit`` found a scheme and a host in was stored and sent to every client as it was,
spaces, quotes and a right-to-left override in the host included."""

from __future__ import annotations

import pytest

from tertulia.domain.inputs import parse_new_message
from tertulia.errors import ValidationFailed


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a b.png",  # a space
        "https://exa mple.com/a.png",
        "https://example.com/a\tb.png",  # controls
        "https://example.com/a\nb.png",
        "https://\u202eexample.com/x.png",  # a bidirectional override (spoofing)
        "https://example.com/\u200bx.png",  # a format character
        "https://example.com/\ud800.png",  # a lone surrogate
        "https://xn--.com/",  # an A-label with nothing in it
        "https://-bad-.com/",  # a hyphen at an end of a label
        "https://example..com/",  # an empty label
        "https://" + "a" * 64 + ".com/",  # a label over 63 characters
        "https://1.2.3.4.5/",  # all digits: no IP address, no domain
        "https://256.1.1.1/",
        "http://intranet/x.pdf",  # no top-level domain (only localhost may lack one)
        "https://example.com:0/",
        'https://example.com/"onerror=".png',  # what a URL only holds percent-encoded
        "https://example.com/<script>.png",
        "https://example.com/a\\b.png",
        "ftp://example.com/a.png",  # a scheme not allowed here
        "https:///a.png",
    ],
)
def test_an_invalid_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_new_message({"type": "i", "external_file_url": url})
    assert refused.value.errors == {"external_file_url": ["Enter a valid URL."]}


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "https://EXAMPLE.com/A.png",
        "https://example.com./a.png",  # a fully qualified name
        "https://bücher.de/bild-ä.png",  # international names, and a path with letters
        "https://xn--bcher-kva.de/a.png",
        "https://example.com/a%20b.png?size=2&x=%22#frag",
        "https://user:secret@files.example.com:8443/a.png",
        "http://localhost:8000/a.png",
        "http://127.0.0.1/a.png",
        "http://[::1]:8080/a.png",
        "https://my-bucket.s3.eu-west-1.amazonaws.com/k/a.png",
    ],
)
def test_a_valid_url_is_kept(url: str) -> None:
    assert parse_new_message({"type": "i", "external_file_url": url}).external_file_url == url


def test_ftp_is_allowed_where_the_schemes_say_so() -> None:
    url = "ftp://example.com/a.png"
    schemes = frozenset({"http", "https", "ftp"})
    assert parse_new_message({"type": "i", "external_file_url": url}, url_schemes=schemes)
