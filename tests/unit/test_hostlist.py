import pytest

from slurmkit.hostlist import HostlistError, expand, fold


def test_expand_keeps_written_order_across_parts_and_items():
    assert expand("b-[3,1-2],a") == ["b-3", "b-1", "b-2", "a"]
    assert expand("10.0.0.[7,3]") == ["10.0.0.7", "10.0.0.3"]
    assert expand("r[1-2]-n[1-2]") == ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]


def test_fold():
    assert fold(["n3", "n1", "n2", "x"]) == "n[1-3],x"


@pytest.mark.parametrize("bad", ["n[1-", "n[3-1]", "", "a,,b", "n[a-b]", "n]1["])
def test_bad_hostlists_raise(bad):
    with pytest.raises(HostlistError):
        expand(bad)


def test_fold_numbers():
    from slurmkit.hostlist import fold_numbers

    assert fold_numbers(range(8)) == "0-7"
    assert fold_numbers([5, 0, 1, 2]) == "0-2,5"
    assert fold_numbers([3]) == "3"


@pytest.mark.parametrize("bad", ["n[019-020]99999999999999999999", "n[1-2]99999999999999999999"])
def test_clustershell_internal_error_on_padded_huge_suffix_is_a_hostlist_error(bad):
    # ClusterShell raises a bare AssertionError ("range too large") on these; it must not escape as one
    from slurmkit.errors import SlurmkitError

    with pytest.raises(HostlistError) as info:
        expand(bad)
    assert isinstance(info.value, SlurmkitError)
    assert bad in str(info.value) and "range too large" in str(info.value)


def test_slurm_conf_reports_the_huge_suffix_as_a_conf_error_naming_the_line():
    from slurmkit.slurm.conf import SlurmConfError, parse_slurm_conf

    with pytest.raises(SlurmConfError, match=r"slurm\.conf:2: bad hostlist"):
        parse_slurm_conf("ClusterName=x\nNodeName=n[019-020]99999999999999999999 CPUs=1\n", "slurm.conf")
