"""Outbound HTTP from handlers goes to public addresses only, unless a setting allows more.

A webhook URL or a thumbnail source is chosen by whoever submits the task, and the
consumer runs inside the network: without a guard a task could make it fetch
cloud metadata (169.254.169.254), an internal admin API or the broker's own
management port (server-side request forgery). Two layers:

* ``check_destination`` refuses, before any request, a URL whose host is, or
  resolves to, a non-public address: the task is dead-lettered (``Permanent``)
  with the reason, since no retry can change it.
* The session's socket factory refuses to *connect* to a non-public address.
  That is the address actually dialled, after DNS and after every redirect, so
  a host that resolves differently the second time (DNS rebinding) or a public
  URL redirecting inward is stopped too (as a connection error: retried, then
  dead-lettered).

``WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS`` turns both off, for a laptop or a test
whose receivers run on the same machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
from yarl import URL

from warren.service.errors import Permanent


class ForbiddenDestination(OSError):
    """A connection to a non-public address was refused."""


def is_public(address: str) -> bool:
    """Globally routable, IPv4-mapped IPv6 judged as the IPv4 address it carries."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not an address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def public_only_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's ``socket_factory``: a socket for public addresses only."""
    family, type_, proto, _, address = addr_info
    if not is_public(address[0]):
        raise ForbiddenDestination(f"refusing to connect to non-public address {address[0]}")
    return socket.socket(family=family, type=type_, proto=proto)


def client_session(allow_private: bool) -> aiohttp.ClientSession:
    if allow_private:
        return aiohttp.ClientSession()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=public_only_socket))


async def check_destination(url: str) -> None:
    """``Permanent`` if ``url``'s host is, or resolves to, a non-public address.

    A name that does not resolve now passes: the request then fails as a
    connection error and is retried (DNS may recover).
    """
    parsed = URL(url)
    host = parsed.raw_host
    if not host:
        raise Permanent(f"URL without a host: {url[:200]!r}")
    try:
        addresses = {str(ipaddress.ip_address(host.strip("[]")))}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parsed.port or 80, type=socket.SOCK_STREAM
            )
        except OSError:
            return
        addresses = {str(info[4][0]) for info in infos}
    if forbidden := sorted(a for a in addresses if not is_public(a)):
        raise Permanent(
            f"{host} is or resolves to a non-public address ({', '.join(forbidden)}); "
            "set WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS=true to allow it"
        )
