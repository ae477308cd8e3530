from tests.conftest import hardware_fixture as fixture


from slurmkit.facts import gpus_from_query, parse_nvsmi_list, parse_nvsmi_query


def test_query_memory_csv_units_stripped():
    t = parse_nvsmi_query(fixture("nvsmi-query-01-h100-8gpu-memory-csv-aihub0008.txt"))
    assert t.fields == ["memory.used", "memory.free"]
    assert t.units == {"memory.used": "MiB", "memory.free": "MiB"}
    assert len(t.rows) == 8
    assert t.rows[0] == {"memory.used": "1718", "memory.free": "79364"}


def test_query_sibling_node_differs_by_one_mib():
    t = parse_nvsmi_query(fixture("nvsmi-query-02-h100-8gpu-memory-csv-aihub0007.txt"))
    assert {r["memory.free"] for r in t.rows} == {"79363"}


def test_query_b300_seven_of_eight_visible():
    t = parse_nvsmi_query(fixture("nvsmi-query-03-b300-7of8-gpus-visible.txt"))
    gpus = gpus_from_query(t)
    assert len(gpus) == 7
    assert {g.name for g in gpus} == {"NVIDIA B300 SXM6 AC"}
    assert {g.driver_version for g in gpus} == {"610.57.04"}
    assert all(g.index is None and g.pci_bus_id is None for g in gpus)  # not in that query: not invented
    assert t.rows[0]["compute_cap"] == "10.3"


def test_list_with_mig_devices():
    gpus = parse_nvsmi_list(fixture("nvsmi-L-01-dgxa100-80gb-mig-head10.txt"))
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "NVIDIA A100-SXM4-80GB"
    assert gpus[1].uuid == "GPU-938c4705-98bf-1735-e98b-c2a5872a8022"
    assert gpus[0].mig_devices == ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]


def test_empty_output_means_no_gpus():
    assert parse_nvsmi_query("").rows == []
    assert parse_nvsmi_list("") == []


# ---- truncated or garbled query output: cut here, from the real fixture

import pytest  # noqa: E402

from slurmkit.facts import FactsParseError  # noqa: E402


def test_query_row_cut_mid_line_names_its_line():
    text = fixture("nvsmi-query-03-b300-7of8-gpus-visible.txt")
    cut = text[: text.rindex(", 10.3")]  # the last row (line 8) loses its compute_cap field
    with pytest.raises(FactsParseError) as info:
        parse_nvsmi_query(cut)
    e = info.value
    assert e.command.startswith("nvidia-smi --query-gpu") and e.line_no == 8
    assert e.message == "2 fields, the header names 3"
