"""`slurmkit discover`: collect hardware facts over SSH, cache them, print the topology and its findings."""

from __future__ import annotations

import json

import click

from slurmkit.cli.config import cluster_path, load


@click.command()
@click.option("--limit", metavar="HOSTS", help="Only these hosts (a hostlist, e.g. node-[1-4],head-1).")
@click.option("--json", "as_json", is_flag=True, help="Print hosts, topology, findings and NCCL settings as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 on any warning or error finding (a rail down, slower or shared, an HCA excluded near a GPU, ...).")
@click.option("--nccl-env", is_flag=True, help="Print the NCCL environment of each node group (export lines) instead of the tables.")
@click.option("--allow-roce", is_flag=True, help="Count Ethernet (RoCE) HCAs as usable rails instead of excluding them.")
@click.pass_context
def discover(ctx, limit, as_json, strict, nccl_env, allow_roce):
    """SSH to every node, collect hardware facts, print the topology.

    \b
    Runs on every host in parallel (compute nodes through the jump host), in one SSH session each:
    nvidia-smi (GPUs, `topo -m`), ibstat and /sys/class/infiniband (HCA ports: state, rate, link layer),
    ibdev2netdev, lscpu, numactl -H, /sys/bus/pci NUMA nodes and `slurmd -C`; `ibnetdiscover` on the first
    head. A missing tool is a fact (no GPU, no InfiniBand), not an error.

    \b
    Facts are cached beside the cluster file in .slurmkit/facts/<host>.json (time, commands, raw outputs,
    parsed facts); `render` and `bootstrap` use them for node groups that declare no hardware, and `validate`
    reports declared hardware they contradict.

    \b
    Printed per node group: CPUs, memory, NUMA nodes, GPUs, HCAs and rails (GPU k -> its closest HCA); then the
    findings: rails down, slower or shared, HCAs excluded from NCCL (down, Ethernet), management interface
    names that differ within a group, unreachable hosts; and the switches (from ibnetdiscover, else the
    cluster file's topology).

    \b
    --nccl-env: per node group, NCCL_IB_HCA (the usable rail HCAs in GPU order) and NCCL_SOCKET_IFNAME (the
    management interface: the one holding the host's cluster-file address, else the one routing to the first
    head; set only when every node of the group names the same one). `slurmkit submit` exports the same.

    Exit 0; 1 when a host gave no facts (unreachable: the others are still cached) or, with --strict, on any
    warning or error finding.
    """
    from rich.console import Console

    from slurmkit.discovery import collect

    cluster = load(ctx, check_env=True)
    path = cluster_path(ctx)
    console = Console(stderr=True)
    n = len(cluster.hosts()) if not limit else None
    done: list[str] = []

    def progress(host: str, ok: bool) -> None:
        done.append(host)
        if not as_json and not nccl_env:
            total = f"/{n}" if n else ""
            console.print(f"[{len(done)}{total}] {host}: {'[green]facts' if ok else '[red]failed'}", highlight=False)

    records, errors = collect(cluster, path, limit=limit, on_done=progress)
    report = build_report(cluster, records, errors, allow_roce)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    elif nccl_env:
        print_nccl_env(report)
    else:
        print_report(report, path)
    failing = [f for f in report["findings"] if f["severity"] in ("warning", "error")]
    ctx.exit(1 if errors or (strict and failing) else 0)


def build_report(cluster, records: dict, errors: dict, allow_roce: bool = False) -> dict:
    """Everything discover prints, as plain data (the --json form). Pure."""
    from dataclasses import asdict

    from slurmkit import hostlist
    from slurmkit.errors import ConfigError
    from slurmkit.hardware import check_names, found_hardware, group_nccl, mgmt_interface, node_facts, slurm_names
    from slurmkit.remote import UnreachableError
    from slurmkit.slurm_versions import host_versions, resolve_target
    from slurmkit.render import topology_switches
    from slurmkit.topology import check_rails, node_topology, switches_from_ibnetdiscover

    groups = [("heads", cluster.head_names)] + [
        (f"nodes[{i}]", hostlist.expand(g.names)) for i, g in enumerate(cluster.nodes)
    ]
    addresses = {h.name: h.address for h in cluster.hosts()}
    names_map = slurm_names(cluster, records)
    hosts: dict[str, dict] = {}
    findings: list[dict] = []
    out_groups = []
    for label, names in groups:
        topos = []
        envs: dict[str, list[str]] = {}
        nccl = group_nccl(names, records, addresses, label, allow_roce)
        for name in names:
            if name in errors:
                summary = _error_text(errors[name])
                hosts[name] = {"group": label, "ok": False, "error": summary}
                code = "unreachable" if isinstance(errors[name], UnreachableError) else "facts-failed"
                findings.append({"node": name, "code": code, "severity": "error",
                                 "message": f"{name}: {summary}"})
                continue
            if name not in records:
                continue  # outside --limit
            record = records[name]
            facts = node_facts(record)
            topo = node_topology(facts, allow_roce=allow_roce)
            topos.append(topo)
            found = found_hardware(facts)
            env = nccl.env[name]
            envs.setdefault(json.dumps(env, sort_keys=True), []).append(name)
            hosts[name] = {
                "group": label, "ok": True, "time": record.get("time"),
                "sockets": found.sockets, "cores_per_socket": found.cores_per_socket,
                "threads_per_core": found.threads_per_core, "memory_mb": found.memory_mb,
                "numa_nodes": len(facts.numa.nodes) if facts.numa else (len(facts.cpu.numa_cpus) if facts.cpu else None),
                "gpu_names": found.gpu_names,
                "gpus": [asdict(g) for g in topo.gpus],
                "hcas": [asdict(h) for h in topo.hcas],
                "rails": [asdict(r) for r in topo.rails],
                "mgmt_ifname": mgmt_interface(facts, addresses.get(name)),
                "nccl_env": env,
                "slurm": [{"version": hv.version, "source": hv.source} for hv in host_versions(name, facts)],
                # its own short hostname, and what Slurm will call it (slurmkit.hardware.slurm_names)
                "hostname": facts.short_hostname, "slurm_name": names_map[name],
            }
            findings += [asdict(f) for f in topo.findings]
        findings += [asdict(f) for f in check_rails(topos)]
        findings += [asdict(f) for f in nccl.findings]
        out_groups.append({
            "group": label, "hosts": hostlist.fold(names), "mgmt_ifname": nccl.mgmt_ifname,
            "nccl_env": [{"hosts": hostlist.fold(hs), "env": json.loads(e)} for e, hs in envs.items()],
        })
    head = cluster.head_names[0]
    ibnet = (records.get(head) or {}).get("outputs", {}).get("ibnetdiscover", "")
    switches = [asdict(s) for s in switches_from_ibnetdiscover(ibnet)] if ibnet.strip() else []
    if switches:
        switch_source = f"ibnetdiscover on {head}"
    else:
        switches = [{"name": s["SwitchName"], "nodes": s.get("Nodes"), "children": s.get("Switches")}
                    for s in topology_switches(cluster)]
        switch_source = "cluster file topology" if switches else None
    unreachable = sorted(n for n, e in errors.items() if isinstance(e, UnreachableError))
    # names render would refuse (as-written names that are not hostnames, one hostname on two hosts)
    findings += [{"node": p.path, "code": "slurm-name", "severity": "error", "message": p.message}
                 for p in check_names(cluster, records)]
    # the Slurm release render and bootstrap will target, from these facts (slurmkit.slurm_versions)
    try:
        target = resolve_target(cluster.slurm_pin, {n: node_facts(r) for n, r in records.items()}, cluster.head_names)
        slurm = {"release": target.release, "source": target.source, "note": target.note}
    except ConfigError as exc:
        slurm = {"release": None, "source": "error", "note": None}
        findings += [{"node": "cluster", "code": "slurm-version", "severity": "error", "message": p.message}
                     for p in exc.problems]
    return {"hosts": hosts, "groups": out_groups, "findings": findings, "failed": sorted(errors), "unreachable": unreachable,
            "switches": switches, "switch_source": switch_source, "slurm": slurm}


def _error_text(exc: BaseException) -> str:
    """A host's error in one line; a parse error as ``command `X`, line N: message`` (the host is the row)."""
    from slurmkit.facts import FactsParseError
    from slurmkit.remote import error_summary

    return exc.detail if isinstance(exc, FactsParseError) else error_summary(exc)


def print_nccl_env(report: dict) -> None:
    from slurmkit.hardware import nccl_exports

    for g in report["groups"]:
        if g["group"] == "heads":
            continue
        for entry in g["nccl_env"]:
            click.echo(f"# {g['group']}: {entry['hosts']}")
            lines = nccl_exports(entry["env"])
            click.echo("\n".join(lines) if lines else "# nothing derived: no usable InfiniBand rail, no management interface")
            if "NCCL_IB_HCA" not in entry["env"] and lines:
                click.echo("# no usable InfiniBand rail: NCCL_IB_HCA not set")
    for name in report["failed"]:
        click.echo(f"# {name}: no facts ({report['hosts'][name]['error']}), not included")


def _gb(mb) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f} GiB"


def print_report(report: dict, cluster_file) -> None:
    from rich.console import Console
    from rich.table import Table

    from slurmkit import hostlist
    from slurmkit.hardware import facts_dir

    console = Console()
    for g in report["groups"]:
        members = [(n, h) for n, h in report["hosts"].items() if h["group"] == g["group"]]
        if not members:
            continue
        table = Table(title=f"{g['group']}: {g['hosts']}", title_justify="left")
        table.add_column("host", no_wrap=True)
        for col in ("CPUs (SxCxT)", "memory", "NUMA", "GPUs", "HCAs usable/all", "rails", "mgmt if"):
            table.add_column(col)
        rail_layouts: dict[str, list[str]] = {}
        for name, h in members:
            if not h["ok"]:
                table.add_row(name, "", "", "", "", "", f"[red]{h['error']}", "")
                continue
            cpus = "?" if h["sockets"] is None else (
                f"{h['sockets'] * h['cores_per_socket'] * h['threads_per_core']} "
                f"({h['sockets']}x{h['cores_per_socket']}x{h['threads_per_core']})")
            names = sorted(set(h["gpu_names"]))
            gpus = f"{len(h['gpus'])} x {names[0]}" if h["gpus"] and names else str(len(h["gpus"])) if h["gpus"] else "none"
            hcas = f"{sum(x['usable'] for x in h['hcas'])}/{len(h['hcas'])}" if h["hcas"] else "none"
            rails = str(sum(r["usable"] for r in h["rails"])) if h["rails"] else "none"
            table.add_row(name, cpus, _gb(h["memory_mb"]), str(h["numa_nodes"] or "?"), gpus, hcas, rails,
                          h["mgmt_ifname"] or "?")
            if h["gpus"]:
                key = json.dumps([(gp["index"], gp["numa_node"], gp["cores"], next(
                    ((r["hca"], r["distance"], r["rate_gbps"], r["usable"]) for r in h["rails"] if r["gpu"] == gp["index"]),
                    None)) for gp in h["gpus"]])
                rail_layouts.setdefault(key, []).append(name)
        console.print(table)
        for key, names in rail_layouts.items():
            rt = Table(title=f"rails of {hostlist.fold(names)}", title_justify="left")
            for col in ("rail/GPU", "NUMA", "cores", "HCA", "distance", "rate", "usable"):
                rt.add_column(col)
            for index, numa, cores, rail in json.loads(key):
                hca, dist, rate, usable = rail if rail else ("-", "-", None, False)
                from slurmkit.facts._text import ranges

                rt.add_row(str(index), "?" if numa is None else str(numa), ranges(cores) if cores else "?", hca, dist,
                           "?" if rate is None else f"{rate:g} Gb/s", "yes" if usable else "[red]no")
            console.print(rt)
    if report["switches"]:
        st = Table(title=f"switches ({report['switch_source']})", title_justify="left")
        for col in ("switch", "nodes", "switches"):
            st.add_column(col)
        for s in report["switches"]:
            nodes = s["nodes"] if isinstance(s["nodes"], str) or not s["nodes"] else ",".join(s["nodes"])
            kids = s["children"] if isinstance(s["children"], str) or not s["children"] else ",".join(s["children"])
            st.add_row(s["name"], nodes or "", kids or "")
        console.print(st)
    slurm = report.get("slurm") or {}
    found: dict[str, list[str]] = {}
    for name, h in report["hosts"].items():
        for v in h.get("slurm") or []:
            found.setdefault(v["version"] + (" (apt candidate)" if v["source"] == "candidate" else ""), []).append(name)
    seen = "; ".join(f"{hostlist.fold(hs)}: {v}" for v, hs in sorted(found.items())) or "none found"
    if slurm.get("release"):
        console.print(f"Slurm: {seen}; render and bootstrap target {slurm['release']}"
                      + (f" ({slurm['note']})" if slurm.get("note") else ""), highlight=False)
    else:
        console.print(f"Slurm: {seen}; no target (see findings)", highlight=False)
    colour = {"error": "red", "warning": "yellow", "info": "dim"}
    if report["findings"]:
        console.print("findings:", highlight=False)
        for f in report["findings"]:
            console.print(f"- [{colour.get(f['severity'], 'white')}]{f['severity']}[/] {f['node']}: "
                          f"{f['message'].removeprefix(f['node'] + ': ')}", highlight=False)
    else:
        console.print("findings: none", highlight=False)
    ok = sum(1 for h in report["hosts"].values() if h["ok"])
    tail = f"; no facts from: {', '.join(report['failed'])}" if report["failed"] else ""
    console.print(f"{ok} host(s) discovered, facts in {facts_dir(cluster_file)}{tail}", highlight=False)
