"""Which targets a download may reach: the address and URL rules, apart from the transport.

A URL in a provider's answer is input we did not choose. Fetched naively it can point the worker at
the cloud metadata service (169.254.169.254), the site's own admin on 10.x, or another parser's idea
of the host. So: https only; the URL is normalised as the HTTP client will send it, and both URL
parsers must agree on its host; every address the host resolves to must be public. These rules run
before any connection (:func:`check_url`), and again on the socket actually connected
(:mod:`page_images.download`), so that DNS rebinding cannot slip past them.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.utils.translation import gettext_noop
from urllib3.util import parse_url

from page_images.exceptions import InvalidImageError, TransientGenerationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_TARGET = gettext_noop(
    "The image service pointed at an address this site will not fetch from."
)


def parse_address(value: str | IPAddress) -> IPAddress:
    """An address object from a literal, without any zone (``fe80::1%eth0``)."""
    if isinstance(value, str):
        return ipaddress.ip_address(value.strip("[]").split("%", 1)[0])
    return value


def is_allowed_address(value: str | IPAddress, *, allow_loopback: bool) -> bool:
    """Public unicast only; loopback too when the tests allow it.

    Private (10/8, 172.16/12, 192.168/16, fc00::/7, and the old site-local fec0::/10), link-local
    (169.254/16, where cloud metadata services live; fe80::/10), shared CGNAT space (100.64/10),
    multicast, reserved and unspecified addresses reach things inside the site's own network,
    never a provider's CDN: always refused.
    IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, 6to4's ``2002::/16``) are judged by
    that address (NAT64's 64:ff9b::/96 is reserved space, so refused outright).
    """
    address = parse_address(value)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # ::ffff:10.0.0.1 is 10.0.0.1 on a dual-stack socket: judge the IPv4 address.
            return is_allowed_address(address.ipv4_mapped, allow_loopback=allow_loopback)
        relayed = address.sixtofour
        if relayed is not None:
            # A relay delivers a 6to4 address (2002::/16) to the IPv4 host inside it, so that host
            # is what we judge: 2002:a00:1:: reaches 10.0.0.1, 2002:808:808:: reaches 8.8.8.8.
            # Python 3.13 calls all of 2002::/16 non-global; judging the embedded address keeps
            # the answer the same on every supported Python. Never loopback: a relay is remote.
            return is_allowed_address(relayed, allow_loopback=False)
    if address.is_loopback:
        return allow_loopback
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False  # fec0::/10: deprecated, but still routed inside some networks
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; a literal address resolves to itself, with no lookup."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise InvalidImageError(REFUSED_TARGET, detail=f"bad host name {host!r}: {exc}") from exc
    except OSError as exc:
        raise TransientGenerationError(
            gettext_noop("The picture's address could not be looked up. Try again."),
            detail=f"{host}: {exc}",
        ) from exc
    return [parse_address(str(info[4][0])) for info in infos]


def _canonical(url: str) -> str:
    """``url`` as requests will send it, so that the host we check is the host it connects to.

    Two URL parsers can disagree about the host of ``https://a.com\\@10.0.0.1/``; checking one
    parser's answer while another connects is a classic way past an SSRF filter. So refuse
    characters that cause such disagreements, let requests normalise the URL (IDNA, quoting),
    and check that result.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        raise InvalidImageError(REFUSED_TARGET, detail=f"unsafe characters in {url!r}")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError) as exc:  # UnicodeError is a ValueError
        raise InvalidImageError(REFUSED_TARGET, detail=f"malformed URL {url!r}: {exc}") from exc
    return str(prepared.url)


def _host_and_port(url: str) -> tuple[str, int]:
    """The one host both parsers agree on, with its port; refuse userinfo and missing hosts.

    Userinfo (``https://user@host``) has no business in an image URL and is the usual vehicle for
    parser confusion.
    """
    try:
        ours, theirs = urlsplit(url), parse_url(url)
    except ValueError as exc:  # urllib3's LocationParseError is a ValueError
        raise InvalidImageError(REFUSED_TARGET, detail=f"malformed URL {url!r}: {exc}") from exc
    if "@" in ours.netloc or theirs.auth is not None:
        # Not the URL itself in the detail: the userinfo may be a password.
        raise InvalidImageError(REFUSED_TARGET, detail=f"userinfo in a URL for {ours.hostname}")
    host = (theirs.host or "").strip("[]").lower()
    if not host or host != (ours.hostname or "").lower():
        raise InvalidImageError(REFUSED_TARGET, detail=f"no unambiguous host in {url!r}")
    try:
        port = ours.port or (443 if ours.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidImageError(REFUSED_TARGET, detail=f"bad port in {url!r}") from exc
    return host, port


def check_url(url: str, *, allow_loopback: bool) -> str:
    """Return the URL to fetch, or refuse it; runs before any connection, so a refused target
    never receives a packet.

    https only, because a provider's CDN always speaks it and plain http could be rewritten on the
    way. Plain http is allowed only to loopback, only when ``allow_loopback`` (the tests' fake
    provider). Every resolved address must pass :func:`is_allowed_address`: one bad address is
    enough, because the connection may pick any of them.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("https", "http"):
        raise InvalidImageError(REFUSED_TARGET, detail=f"scheme {scheme!r} in {url!r}")
    if scheme == "http" and not allow_loopback:
        raise InvalidImageError(REFUSED_TARGET, detail=f"plain http is refused: {url!r}")
    _host_and_port(url)  # on the URL as given too: normalising drops an empty "@"
    url = _canonical(url)
    host, port = _host_and_port(url)
    addresses = resolve(host, port)
    refused = [a for a in addresses if not is_allowed_address(a, allow_loopback=allow_loopback)]
    if refused or not addresses:
        raise InvalidImageError(
            gettext_noop("The image service pointed at an address that is not a public address."),
            detail=f"{host} resolves to {', '.join(map(str, refused)) or 'nothing'}",
        )
    if scheme == "http" and not all(a.is_loopback for a in addresses):
        raise InvalidImageError(
            REFUSED_TARGET, detail=f"plain http to a non-loopback host: {url!r}"
        )
    return url
