#!/usr/bin/env bash
# Set up everything fastka needs on a Debian 12 machine (as root), then run one job.
#
#   bash scripts/run.sh lab [ARGS]    install, then `fastka lab` (routers failing over in netns)
#   bash scripts/run.sh test [ARGS]   install, then the whole test suite (ARGS go to pytest)
#   bash scripts/run.sh install       install only
#
# Installs Debian packages (keepalived, ipvsadm, user-mode-linux, ... as test peers and
# oracles; their services are never started), a virtual environment in .venv, the Python
# dependencies, and the compiled build (Cython + cffi). Running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-lab}
[ $# -gt 0 ] && shift

APT_PACKAGES=(
    python3 python3-venv python3-dev gcc make git
    iproute2 iputils-ping procps kmod psmisc tcpdump
    keepalived ipvsadm user-mode-linux nftables frr
)

log() { printf '[fastka setup] %s\n' "$*" >&2; }

install_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "not root: cannot install ${missing[*]} (run as root)"; return 0
    fi
    log "apt-get install ${missing[*]}"
    # Never let a package start its daemon (keepalived and FRR's vrrpd must not speak VRRP
    # on this host; the tests run them by hand inside network namespaces).
    local policy=/usr/sbin/policy-rc.d created=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$created" ] && rm -f "$policy"
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now keepalived.service frr.service >/dev/null 2>&1 || true
    fi
}

install_python() {
    local py=${FASTKA_PYTHON:-python3}
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv with $($py --version)"
        "$py" -m venv .venv
    fi
    log "pip install build tools, dependencies and the compiled build"
    .venv/bin/pip install -q --disable-pip-version-check -U pip setuptools wheel 'Cython>=3.0.10' 'cffi>=1.16'
    .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation -e '.[test]'
}

install_apt
install_python

case "$job" in
    install) ;;
    lab) exec .venv/bin/fastka lab "$@" ;;
    test)
        export FASTKA_REQUIRE_ALL=1
        exec .venv/bin/python -m pytest "$@"
        ;;
    *) log "unknown job '$job' (lab, test, install)"; exit 2 ;;
esac
