"""The metrics server never lets a client hold it open: closing drops idle connections,
and a client too slow to send its request is disconnected."""

from __future__ import annotations

import asyncio

import pytest

from dogqueue import InvalidInput
from dogqueue.backend.base import EngineBackend
from dogqueue.observability.prometheus import REQUEST_TIMEOUT_SECONDS, MetricsServer

#: Guards against a hang; the server normally answers at once.
PATIENCE_SECONDS = 20.0


async def _connection_ends(reader: asyncio.StreamReader) -> bytes:
    """What the server sends before it closes the connection."""
    return await asyncio.wait_for(reader.read(), PATIENCE_SECONDS)


async def test_close_drops_an_idle_connection(backend: EngineBackend) -> None:
    server = MetricsServer(backend, port=0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await asyncio.sleep(0)  # the server accepted it and waits for a request
        await asyncio.wait_for(server.close(), PATIENCE_SECONDS)
        assert await _connection_ends(reader) == b""
    finally:
        writer.close()


async def test_close_drops_a_half_sent_request(backend: EngineBackend) -> None:
    server = MetricsServer(backend, port=0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        await asyncio.wait_for(server.close(), PATIENCE_SECONDS)
        assert await _connection_ends(reader) == b""
    finally:
        writer.close()


async def test_a_slow_client_is_disconnected(backend: EngineBackend) -> None:
    async with MetricsServer(backend, port=0, request_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /metr")
            await writer.drain()
            assert await _connection_ends(reader) == b""
        finally:
            writer.close()
        # A prompt client is still served.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert (await _connection_ends(reader)).startswith(b"HTTP/1.1 200 OK")
        finally:
            writer.close()


def test_the_request_timeout_is_checked(backend: EngineBackend) -> None:
    assert REQUEST_TIMEOUT_SECONDS == 10.0
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(InvalidInput) as raised:
            MetricsServer(backend, request_timeout=bad)  # type: ignore[arg-type]
        assert raised.value.field == "request_timeout"
