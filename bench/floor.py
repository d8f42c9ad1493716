"""Floors for the poll-cost benchmark: what a Python asyncio poller cannot go below.

Each floor sends, per device poll, the three requests an ideal poller needs for the bench PDU
(a GET of the 6 scalars, a GETBULK of the 2 phase columns with 4 repetitions, a GETBULK of the
outlet column with 25), one after the other, with a timeout timer per request as any real
poller has:

    floor-asyncio  bare asyncio DatagramProtocol: encode from a template, sendto, match the
                   reply by request-id; no BER decoding of the values at all
    floor-client   dcim's SnmpClient.request (shared socket, retries, full BER decode), without
                   the collector, the profile decode or the poller around it
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import benchlib as bl

from dcim.snmp.client import SnmpClient
from dcim.snmp.codec import V2C, PduType, RequestTemplate

PollFn = Callable[[int], Awaitable[int]]


def templates(client: SnmpClient) -> list[RequestTemplate]:
    """The three requests of an ideal bench PDU poll."""
    scalars = [oid for oid, _ in bl.SCALARS.values()]
    return [client.template(V2C, "public", PduType.GET_REQUEST, scalars),
            client.template(V2C, "public", PduType.GET_BULK_REQUEST,
                            [bl.PHASE_CURRENT, bl.PHASE_VOLTAGE], 0, bl.PHASES + 1),
            client.template(V2C, "public", PduType.GET_BULK_REQUEST, [bl.OUTLET_POWER], 0,
                            bl.OUTLETS + 1)]


def _skip(data: bytes, i: int) -> tuple[int, int]:
    """Content start and end of the BER element at data[i]."""
    n = data[i + 1]
    if n < 0x80:
        return i + 2, i + 2 + n
    k = n & 0x7F
    start = i + 2 + k
    return start, start + int.from_bytes(data[i + 2:start], "big")


def request_id(data: bytes) -> int:
    """The request-id of a v1/v2c message, reading only the headers in front of it."""
    i, _ = _skip(data, 0)  # Message SEQUENCE
    _, i = _skip(data, i)  # version
    _, i = _skip(data, i)  # community
    i, _ = _skip(data, i)  # PDU
    s, e = _skip(data, i)  # request-id INTEGER
    return int.from_bytes(data[s:e], "big", signed=True)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[int, asyncio.Future[bytes]]) -> None:
        self.pending = pending

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        fut = self.pending.pop(request_id(data), None)
        if fut is not None and not fut.done():
            fut.set_result(data)


async def asyncio_floor(ports: list[int]) -> PollFn:
    """A poll function over a bare asyncio UDP socket (returns the varbinds it asked for)."""
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[bytes]] = {}
    transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(pending),
                                                       local_addr=("127.0.0.1", 0),
                                                       family=socket.AF_INET)
    tpls = templates(SnmpClient())
    next_id = 1

    def expire(rid: int) -> None:
        fut = pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(TimeoutError(f"request {rid}"))

    async def poll(i: int) -> int:
        nonlocal next_id
        addr = ("127.0.0.1", ports[i % len(ports)])
        for tpl in tpls:
            rid = next_id
            next_id += 1
            fut = loop.create_future()
            pending[rid] = fut
            transport.sendto(tpl.encode(rid), addr)
            timer = loop.call_later(2.0, expire, rid)
            try:
                await fut
            finally:
                timer.cancel()
        return bl.VARBINDS_PER_POLL

    return poll


async def client_floor(ports: list[int]) -> PollFn:
    """A poll function over dcim's SnmpClient (returns the varbinds that came back in range)."""
    client = SnmpClient()
    tpls = templates(client)
    prefixes = [tuple(int(x) for x in c.split(".")) for c in (bl.PHASE_CURRENT, bl.OUTLET_POWER)]

    async def poll(i: int) -> int:
        port = ports[i % len(ports)]
        count = 0
        for tpl in tpls:
            msg = await client.request("127.0.0.1", port, tpl, 2.0, 1)
            count += len(msg.pdu.varbinds)
        # the GETBULKs return one repetition past each column's end (3 varbinds)
        return count - 3 if prefixes else count

    return poll
