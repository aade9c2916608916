from __future__ import annotations

import pytest

from page_images.addresses import check_url, is_allowed_address
from page_images.exceptions import InvalidImageError
from tests.reliability import case


@case(
    "provider-bytes",
    "A picture URL on the old site-local range fec0::/10",
    "Refused by the address rule before any connection.",
)
@pytest.mark.parametrize("address", ["fec0::1", "feff:ffff::1", "fec0:0:0:1::1"])
def test_the_old_site_local_range_is_refused(address: str) -> None:
    # fec0::/10 was deprecated in 2004 but some networks still route it internally; Python calls
    # it global, so only an explicit rule keeps it out.
    assert not is_allowed_address(address, allow_loopback=True)


def test_a_public_ipv6_address_next_to_it_is_allowed() -> None:
    assert is_allowed_address("2606:4700::1111", allow_loopback=False)


# --- The address rule -------------------------------------------------------------------------

PUBLIC = ["8.8.8.8", "1.1.1.1", "172.15.255.255", "100.63.255.255", "2606:4700:4700::1111"]
PUBLIC += ["::ffff:8.8.8.8", "2002:808:808::"]  # mapped and 6to4 forms of a public address
LOOPBACK_ADDRESSES = ["127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1"]
NEVER = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "240.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "fd00::1",
    "fc00::1",
    "fe80::1",
    "fe80::1%eth0",
    "::",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1: never a loopback, whatever the flag
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "::a00:1",  # IPv4-compatible 10.0.0.1
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_allowed_address(address, allow_loopback=False)
    assert is_allowed_address(address, allow_loopback=True)


@pytest.mark.parametrize("address", LOOPBACK_ADDRESSES)
def test_loopback_is_allowed_only_when_asked(address: str) -> None:
    assert not is_allowed_address(address, allow_loopback=False)
    assert is_allowed_address(address, allow_loopback=True)


@case(
    "provider-bytes",
    "A picture URL on a private, link-local (169.254.169.254 metadata), CGNAT, multicast or "
    "reserved address, also in IPv4-mapped and 6to4 form",
    "'The image service pointed at an address this site will not fetch from.'",
)
@pytest.mark.parametrize("address", NEVER)
def test_private_link_local_and_special_addresses_are_never_allowed(address: str) -> None:
    assert not is_allowed_address(address, allow_loopback=False)
    assert not is_allowed_address(address, allow_loopback=True)


def test_localhost_by_name() -> None:
    assert check_url("http://localhost:8000/a.png", allow_loopback=True).startswith("http://")
    with pytest.raises(InvalidImageError, match="not a public address"):
        check_url("https://localhost/a.png", allow_loopback=False)
    with pytest.raises(InvalidImageError):
        check_url("http://localhost:8000/a.png", allow_loopback=False)


# --- Parser disagreements (branch `coverage`) ----------------------------------------------------


@pytest.mark.parametrize("url", ["https://.images.example/a.png", "https://*.images.example/a.png"])
def test_a_host_that_requests_cannot_send_is_refused(url: str) -> None:
    # Both URL parsers read the same host, but requests refuses to build a request for it: the URL
    # is refused as malformed, not left to fail somewhere inside the download.
    with pytest.raises(InvalidImageError) as caught:
        check_url(url, allow_loopback=False)
    assert "malformed URL" in caught.value.detail


def test_a_port_only_one_parser_can_read_is_refused() -> None:
    # urllib3 stops the authority at the backslash (port 443); urllib.parse reads on to
    # "443\.evil.example", no port at all. The parsers disagree on where to connect: refused.
    with pytest.raises(InvalidImageError) as caught:
        check_url("https://8.8.8.8:443\\.evil.example/a.png", allow_loopback=False)
    assert "bad port" in caught.value.detail
