#!/usr/bin/env bash
# Install everything slurmkit and its tests need on Debian 12 / Ubuntu 22.04, as root: Debian's Slurm, munge,
# OpenSSH, Open MPI, debootstrap and systemd-nspawn (image-based local nodes), then a Python venv in .venv with slurmkit (editable), pytest and torch (CPU).
# Idempotent: packages already present are not fetched again; the venv is rebuilt only when pyproject changes.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(slurm-wlm slurm-client munge openssh-server openssh-client iproute2 procps rsync
              openmpi-bin libopenmpi-dev python3 python3-venv python3-dev util-linux kmod chromium
              debootstrap systemd-container  # local nodes booting their own OS images
              prometheus)  # the exporter's live test scrapes it with a real Prometheus

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (it installs Debian packages and the local cluster needs namespaces)" >&2
  exit 2
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $PY is $("$PY" --version 2>&1); slurmkit needs Python >= 3.11" >&2
  exit 2
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  # CPU torch for the bench engine and the DDP example (pip takes a local wheel when one is configured).
  .venv/bin/pip install -q 'torch==2.13.0' || .venv/bin/pip install -q torch
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(slurmctld -V 2>/dev/null || echo 'no slurmctld'))"
