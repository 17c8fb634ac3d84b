"""The data-path topology inside a user-mode-linux guest (``tests/uml/rig.py``), as shell::

    client (10.0.0.100) --br-c-- director (10.0.0.1, VIPs 10.0.0.10/.20) --br-r-- rs1..rsN (10.1.0.11..)

Used by ``test_uml_datapath.py`` and ``bench/compare/checks.py``; ``ipvs_table`` by the
guest scripts ``guest_datapath.py`` and ``tests/daemon/guest_ipvs.py``.
"""

from __future__ import annotations

import socket
from pathlib import Path

# The data-path topology, as shell inside the guest:
#   client (10.0.0.100) --br-c-- director (10.0.0.1, VIPs) --br-r-- rs1..rsN (10.1.0.11..)
TOPOLOGY = """
set -e
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.vs.expire_nodest_conn=1 2>/dev/null || true
ip link add br-c type bridge; ip link set br-c up
ip link add br-r type bridge; ip link set br-r up
ip addr add 10.0.0.1/24 dev br-c
ip addr add 10.1.0.1/24 dev br-r
ip addr add 10.0.0.10/32 dev br-c
ip addr add 10.0.0.20/32 dev br-c
sysctl -qw net.ipv4.conf.all.rp_filter=0
sysctl -qw net.ipv4.conf.default.rp_filter=0
sysctl -qw net.ipv4.conf.all.accept_local=1
sysctl -qw net.ipv4.conf.br-r.accept_local=1
mkns() {{  # name bridge address gateway
    ip netns add $1
    ip link add v-$1 type veth peer name eth0 netns $1
    ip link set v-$1 master $2 up
    ip -n $1 link set lo up
    ip -n $1 addr add $3/24 dev eth0
    ip -n $1 link set eth0 up
    ip -n $1 route add default via $4
}}
mkns client br-c 10.0.0.100 10.0.0.1
for i in $(seq 1 {n_rs}); do
    mkns rs$i br-r 10.1.0.$((10 + i)) 10.1.0.1
done
set +e
"""


def ipvs_table() -> dict[str, dict[str, int]]:
    """/proc/net/ip_vs as {"TCP 10.0.0.10:80": {"10.1.0.11:80": weight}} (cheap: no exec)."""
    table: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None

    def hexaddr(h: str) -> str:
        a, p = h.split(":")
        return f"{socket.inet_ntoa(bytes.fromhex(a))}:{int(p, 16)}"

    for line in Path("/proc/net/ip_vs").read_text().splitlines()[3:]:
        parts = line.split()
        if parts and parts[0] in ("TCP", "UDP", "SCTP"):
            current = table.setdefault(f"{parts[0]} {hexaddr(parts[1])}", {})
        elif parts and parts[0] == "->" and current is not None:
            current[hexaddr(parts[1])] = int(parts[3])
    return table
