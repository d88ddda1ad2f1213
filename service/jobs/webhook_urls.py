"""Which webhook URLs the service calls: the SSRF rules, checked at submit and again at each
delivery (a name can resolve elsewhere by then).

By default a URL must be `https`, name no credentials, and resolve only to public addresses: a
host with any loopback, private, shared, link-local, multicast, reserved or unspecified address
is refused, so that a client cannot make the service reach what sits behind it (a metadata
endpoint, an admin port). WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE and WEBHOOK_ALLOWED_HOSTS
relax or narrow the rules. A delivery connects to the very address it checked (`Target.ip`),
not to a second resolution of the name.

The standard library's `ipaddress` says what is public; no library checks a URL for SSRF with
DNS included, so the rules are here.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookURLError(ValueError):
    """Why a webhook URL is refused, for a person to act on."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (`ip`, `port`) and what to call the host (`host`, for
    the Host header and TLS's SNI and certificate check)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: str
    path: str  # path and query, as sent

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for loopback, private, shared (100.64/10), link-local, reserved and
    # unspecified addresses; a multicast group can be global, and is refused all the same.
    return address.is_global and not address.is_multicast


async def check_webhook_url(url: str, settings: Settings) -> Target:
    """The URL as the service will call it, or WebhookURLError saying why it may not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise WebhookURLError("must be an https URL")
    if scheme == "http" and not settings.webhook_allow_http:
        raise WebhookURLError("must be https (WEBHOOK_ALLOW_HTTP is off)")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError("must not carry credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookURLError("has no host")
    allowed = settings.webhook_allowed_host_list
    if allowed and host not in allowed:
        raise WebhookURLError(f"host {host} is not one WEBHOOK_ALLOWED_HOSTS allows")
    port = port or (443 if scheme == "https" else 80)
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except TimeoutError as exc:
        raise WebhookURLError(f"host {host} did not resolve in time") from exc
    except (OSError, UnicodeError) as exc:
        raise WebhookURLError(f"host {host} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookURLError(f"host {host} does not resolve")
    if not settings.webhook_allow_private:
        refused = [address for address in addresses if not _public(address)]
        if refused:
            raise WebhookURLError(
                f"host {host} resolves to a non-public address ({refused[0]}); "
                "WEBHOOK_ALLOW_PRIVATE allows it"
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port, str(addresses[0]), path)
