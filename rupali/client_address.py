"""The client's address, taken from ``X-Forwarded-For`` only as far as the operator's own proxies vouch for it.

Anyone can send ``X-Forwarded-For: 203.0.113.77``; only the entries a trusted proxy *appended* are facts. Each
proxy appends the address it received the connection from, so the header is read from the right:

- ``RUPALI_TRUSTED_PROXY_HOPS=N``: N proxies stand in front of the app (Railway's edge is one). The client is the
  entry N-1 places left of the connecting peer's own, i.e. the N-th entry from the right.
- ``RUPALI_FORWARDED_ALLOW_IPS``: addresses or networks of trusted proxies. Walking from the connecting peer to the
  left, the first address that is not a trusted proxy is the client.

With neither, the header is ignored and the connecting peer is the client. Whatever a client writes further left
changes nothing. The resolved address replaces the ASGI ``client``, so sessions, logs and the sign-in rate limits
all see the same one.

Behind Cloudflare (``RUPALI_CDN_PROVIDER=cloudflare``) the client is Cloudflare's ``CF-Connecting-IP``, which it
sets on every request and overwrites when a client sends one — but only for a request that came through the
trusted proxies above; a connection straight to the app cannot choose its address that way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from rupali.config import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(raw: str) -> list[Network]:
    """Parse ``RUPALI_FORWARDED_ALLOW_IPS`` (comma-separated addresses or CIDR networks)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()]


def _is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def resolve(peer: str, forwarded_for: str | None, *, hops: int, networks: Sequence[Network]) -> str:
    """The client address for a connection from ``peer`` carrying ``forwarded_for``."""
    chain = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()][-16:]
    if hops > 0:
        # The last proxy is the peer; the ones before it each appended one entry.
        return chain[-hops] if len(chain) >= hops else (chain[0] if chain else peer)
    if not networks or not _is_trusted(peer, networks):
        return peer
    for address in reversed(chain):
        if not _is_trusted(address, networks):
            return address
    return chain[0] if chain else peer


class ClientAddress:
    """ASGI middleware replacing ``scope["client"]`` with the resolved address (HTTP and websockets)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hops = settings.trusted_proxy_hops
        self.networks = trusted_networks(settings.forwarded_allow_ips)
        self.cloudflare = settings.cdn_provider == "cloudflare"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and (self.hops or self.networks) and scope.get("client"):
            host, port = scope["client"]
            headers = scope.get("headers") or []
            connecting = self._cloudflare_client(host, headers) if self.cloudflare else None
            forwarded = [value for name, value in headers if name == b"x-forwarded-for"]
            if connecting is not None:
                # Changed in place: the middleware outside this one reads the matched route from the same scope.
                scope["client"] = (connecting, port)
            elif forwarded:
                header = ",".join(value.decode("latin-1") for value in forwarded)
                scope["client"] = (resolve(host, header, hops=self.hops, networks=self.networks), port)
        await self.app(scope, receive, send)

    def _cloudflare_client(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        if not self.hops and not _is_trusted(peer, self.networks):
            return None
        value = next((value.decode("latin-1").strip() for name, value in headers if name == b"cf-connecting-ip"), "")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return None
