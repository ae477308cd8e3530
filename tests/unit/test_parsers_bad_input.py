"""Named examples of bad input to the text parsers (found by test_properties_parsers.py or reported): each
returns its typed result or raises the package's own error, promptly."""

from __future__ import annotations

import pytest

from slurmkit import hostlist
from tests.unit._bounded import BOUND_S, bounded


@pytest.mark.parametrize("expr", ["node-[1-100000000]", "n[1-1000]-[1-1000]", "a[1-60000],b[1-60000]",
                                  "n[0-99999999999999999999999]"])
def test_a_hostlist_naming_too_many_hosts_is_refused_without_expanding(expr):
    with pytest.raises(hostlist.HostlistError, match=f"names more than {hostlist.MAX_NAMES} hosts; check the ranges"):
        bounded(BOUND_S, hostlist.expand, expr)


def test_a_hostlist_at_the_bound_still_expands():
    assert len(bounded(BOUND_S * 4, hostlist.expand, f"n[1-{hostlist.MAX_NAMES}]")) == hostlist.MAX_NAMES
