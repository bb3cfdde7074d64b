"""Fixtures of the external bots' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from external.fakes import Proxy, ProxyFactory


@pytest.fixture
async def proxy_to() -> AsyncIterator[ProxyFactory]:
    """Start TCP proxies to given ports; all are closed after the test."""
    made: list[Proxy] = []

    async def make(port: int) -> Proxy:
        proxy = Proxy(port)
        await proxy.start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        await proxy.close()
