"""Property tests of the Slurm config reader and the adopter: mutations of the real configs in
tests/fixtures/slurm-conf (truncation, line deletion and duplication, character flips and inserts) and arbitrary
text. Each call returns its result or raises a SlurmkitError (SlurmConfError, HostlistError, ConfigError) within
a time bound; never another exception, never a hang. When adoption succeeds, the cluster file it gives either
passes `validate` (parse_cluster and cross_check): a mutated config may be refused, never adopted into an invalid
file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmkit import adopt as ad
from slurmkit.cluster import cross_check, dump_cluster, parse_cluster
from slurmkit.errors import SlurmkitError
from slurmkit.slurm import conf as sc
from tests.conftest import FIXTURES
from tests.unit._bounded import BOUND_S, bounded

CONF = FIXTURES / "slurm-conf"
SEEDS = {kind: [p.read_text() for p in sorted(CONF.glob(f"*/{kind}"))] for kind in ("slurm.conf", "gres.conf", "topology.conf")}
SETTINGS = settings(max_examples=int(os.environ.get("SLURMKIT_PROPERTY_EXAMPLES", 25)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SPECIAL = st.sampled_from(["\x00", "\r", "\r\n", "\ufeff", "\t", "\n", " ", "=", ",", "[", "]", "(", ")", '"', "\\",
                           "\\\n", "#", "\\#", "0", "-1", "99999999999999999999", "DEFAULT", "ALL", "include x",
                           "NodeName=", "Gres=gpu:", "File=/dev/nvidia[", ":", "-", "\u00e9", "\ufffd"])


@st.composite
def mutated(draw, kind: str) -> str:
    text = draw(st.sampled_from(SEEDS[kind]))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["cut", "delete_line", "duplicate_line", "flip", "insert"]))
        lines = text.splitlines(keepends=True) or [""]
        if how == "cut":
            text = text[: draw(st.integers(0, len(text)))]
        elif how in ("delete_line", "duplicate_line"):
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if how == "delete_line" else [lines[i]] * 2
            text = "".join(lines)
        else:
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(SPECIAL | st.characters()) + text[i + (how == "flip"):]
    return text


def _adopt(conf_text: str, gres_text: str | None, topo_text: str | None) -> ad.Adopted:
    conf = sc.parse_slurm_conf(conf_text)
    gres = sc.parse_gres_conf(gres_text) if gres_text is not None else None
    topo = sc.parse_topology_conf(topo_text) if topo_text is not None else None
    return ad.adopt(conf, gres, topo)


def test_every_kind_has_real_seeds():
    assert all(SEEDS.values()), {k: len(v) for k, v in SEEDS.items()}


@pytest.mark.parametrize("kind, fn", [("slurm.conf", sc.parse_slurm_conf), ("gres.conf", sc.parse_gres_conf), ("topology.conf", sc.parse_topology_conf)])
def test_readers_on_mutations_and_arbitrary_text(kind, fn):
    @SETTINGS
    @given(st.one_of(mutated(kind), st.text(max_size=200)))
    def run(text):
        try:
            bounded(BOUND_S, fn, text)
        except SlurmkitError as exc:
            assert str(exc).strip()

    run()


@SETTINGS
@given(mutated("slurm.conf"), st.none() | mutated("gres.conf"), st.none() | mutated("topology.conf"))
def test_adoption_of_mutated_configs_gives_a_valid_file_or_our_error(conf_text, gres_text, topo_text):
    try:
        a = bounded(BOUND_S, _adopt, conf_text, gres_text, topo_text)
    except SlurmkitError as exc:
        assert str(exc).strip()
        return
    cluster = parse_cluster(dump_cluster(a.data), "adopted")  # a ConfigError here fails the test
    assert cross_check(cluster) == [], a.not_kept


def test_an_include_that_includes_itself_stops(tmp_path: Path):
    (tmp_path / "slurm.conf").write_text("include slurm.conf\n")
    with pytest.raises(sc.SlurmConfError):
        bounded(BOUND_S, sc.read_slurm_conf, tmp_path / "slurm.conf")
