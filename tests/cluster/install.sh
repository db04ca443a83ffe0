#!/usr/bin/env bash
# Install what the cluster tests need, BEFORE any network namespace is made (inside one no
# registry is reachable): Debian's SLURM with accounting (slurmdbd + MariaDB, without which
# submitit cannot see a cancelled job's state) and munge, and the Python extra `cluster`
# (ray, submitit). Package services must not start on the host network during installation:
# a /usr/sbin/policy-rc.d exiting 101 prevents it (created here if absent, removed afterwards).
# Usage: tests/cluster/install.sh [PYTHON]   (PYTHON: the interpreter whose env gets the extra)
set -euo pipefail
PY="${1:-python3}"
if [ "$(id -u)" != 0 ]; then
    echo "cluster install: not root, skipping apt packages (SLURM tests will be skipped)" >&2
else
    created=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created=1
    fi
    trap '[ -n "$created" ] && rm -f /usr/sbin/policy-rc.d' EXIT
    pkgs="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
    missing=""
    for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing
    fi
fi
# the same pins as pyproject.toml's extra `cluster`
"$PY" -m pip install --quiet --disable-pip-version-check "ray>=2.9" "submitit>=1.5"
