from __future__ import annotations

import pytest

from page_images.addresses import is_allowed_address


@pytest.mark.parametrize("address", ["fec0::1", "feff:ffff::1", "fec0:0:0:1::1"])
def test_the_old_site_local_range_is_refused(address: str) -> None:
    # fec0::/10 was deprecated in 2004 but some networks still route it internally; Python calls
    # it global, so only an explicit rule keeps it out.
    assert not is_allowed_address(address, allow_loopback=True)


def test_a_public_ipv6_address_next_to_it_is_allowed() -> None:
    assert is_allowed_address("2606:4700::1111", allow_loopback=False)
