from tests.conftest import hardware_fixture as fixture


from slurmkit.facts import parse_topo_matrix


def _near(m, gpu, codes=("PIX",)):
    return [m.nic_names[n] for n in m.nic_labels if m.links[gpu][n] in codes]


def test_topo01_tabs_nic_legend_gpu3_not_nic3():
    m = parse_topo_matrix(fixture("topo-01-h100-12nic-roce-1numa-aihub0007.txt"))
    assert m.gpu_labels == [f"GPU{i}" for i in range(8)]
    assert len(m.nic_labels) == 12
    assert _near(m, "GPU3") == ["mlx5_5"]
    assert _near(m, "GPU7") == ["mlx5_11"]
    assert m.links["GPU0"]["GPU1"] == "NV18"
    assert m.cpu_affinity["GPU0"] == "0-191"
    assert m.numa_affinity["GPU7"] == 0


def test_topo02_old_format_columns_named_by_hca():
    m = parse_topo_matrix(fixture("topo-02-dgxa100-12mlx5-oldfmt-no-nic-legend.txt"))
    assert m.nic_labels[0] == "mlx5_0" and m.nic_names["mlx5_11"] == "mlx5_11"
    assert _near(m, "GPU0", ("PXB",)) == ["mlx5_0", "mlx5_1"]
    assert _near(m, "GPU6", ("PXB",)) == ["mlx5_8", "mlx5_9"]
    assert m.cpu_affinity["GPU0"] == "48-63,176-191"
    assert m.numa_affinity == {"GPU0": 3, "GPU1": 3, "GPU2": 1, "GPU3": 1, "GPU4": 7, "GPU5": 7, "GPU6": 5, "GPU7": 5}


def test_topo03_topo_mp_last_row_without_trailing_space():
    m = parse_topo_matrix(fixture("topo-03-dgx1-v100-4mlx5-topo-mp.txt"))
    assert m.links["GPU0"]["GPU1"] == "PIX"
    assert m.links["mlx5_3"]["mlx5_2"] == "PHB"
    assert _near(m, "GPU7") == ["mlx5_3"]
    assert m.cpu_affinity["GPU4"] == "20-39,60-79"


def test_topo04_space_padded_crlf_18_nics():
    m = parse_topo_matrix(fixture("topo-04-oci-a100-18nic-pxb-spaces.txt"))
    assert len(m.nic_labels) == 18
    assert _near(m, "GPU0", ("PXB",)) == ["mlx5_5", "mlx5_6", "mlx5_7", "mlx5_8"]
    assert _near(m, "GPU4", ("PXB",)) == ["mlx5_14", "mlx5_15", "mlx5_16", "mlx5_17"]
    assert m.cpu_affinity["GPU4"] == "112-127"
    assert m.numa_affinity["GPU4"] == 7
    assert m.links["NIC17"]["NIC16"] == "PIX"


def test_topo05_ansi_header_and_legend_gap():
    m = parse_topo_matrix(fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"))
    assert m.devices[0] == "GPU0"
    assert m.nic_names["NIC8"] == "mlx5_8" and m.nic_names["NIC9"] == "mlx5_10" and m.nic_names["NIC10"] == "mlx5_11"
    assert "mlx5_9" not in m.nic_names.values()
    assert _near(m, "GPU6") == ["mlx5_8"] and _near(m, "GPU7") == []
    assert _near(m, "GPU7", ("PXB",)) == ["mlx5_8"]
    assert m.cpu_affinity["GPU4"] == "56-111,168-223"
    assert m.numa_affinity["GPU3"] == 0 and m.numa_affinity["GPU4"] == 1


def test_topo06_comma_cpu_lists_three_pix_nics():
    m = parse_topo_matrix(fixture("topo-06-dell-h100-12nic-topo-mp-no-nvlink.txt"))
    assert _near(m, "GPU0") == ["mlx5_0", "mlx5_1", "mlx5_2"]
    assert _near(m, "GPU4") == ["mlx5_6", "mlx5_7", "mlx5_8"]
    assert m.links["GPU0"]["GPU4"] == "SYS"
    assert m.cpu_affinity["GPU5"] == "1,3,5,7,9,11"


def test_no_output_is_no_matrix():
    assert parse_topo_matrix("") is None


# ---- truncated or garbled output: cut or altered here, from the real fixture

import pytest  # noqa: E402

from slurmkit.facts import FactsParseError  # noqa: E402

TOPO05 = "topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"


def _raises(text: str) -> FactsParseError:
    with pytest.raises(FactsParseError) as info:
        parse_topo_matrix(text)
    assert info.value.command == "nvidia-smi topo -m"
    return info.value


def test_topo_row_cut_mid_line_names_its_line():
    lines = fixture(TOPO05).split("\n")
    # line 6 is the GPU4 row; keep its label and 5 cells
    err = _raises("\n".join(lines[:5] + ["\t".join(lines[5].split("\t")[:6])]))
    assert err.line_no == 6 and "row GPU4 has 5 cells" in err.message


def test_topo_matrix_cut_after_gpu_rows_names_missing_rows():
    err = _raises("\n".join(fixture(TOPO05).split("\n")[:9]))  # header + GPU0..GPU7, no NIC row
    assert err.line_no == 9 and "no row for NIC0, NIC1" in err.message


def test_topo_cut_before_nic_legend():
    text = fixture(TOPO05)
    err = _raises(text[: text.index("NIC Legend:")])
    assert err.line_no == 0 and "no NIC Legend entry for NIC0" in err.message
    assert str(err) == f"command `nvidia-smi topo -m`, end of output: {err.message}"


def test_topo_garbled_link_code():
    lines = fixture(TOPO05).split("\n")
    lines[3] = lines[3].replace("NV18", "N?18", 1)  # line 4: GPU2's row
    err = _raises("\n".join(lines))
    assert err.line_no == 4 and "row GPU2, column GPU0: 'N?18' is no link code" in err.message
