"""Accept mode and VMAC multicast filtering with nftables, as Keepalived 2.2.7 does it.

RFC 5798's Accept_Mode: a MASTER that does not own its addresses (priority < 255) must
not accept packets addressed to them unless ``accept`` is set. Keepalived (and fastka)
enforce ``no_accept`` -- explicit, or implied by strict mode -- with nftables, in the
table ``keepalived`` (``nftables [TABLE]``), and the same table carries the rules that
keep IGMP/MLD reports and router solicitations off VMAC (macvlan) interfaces.

The ruleset is Keepalived 2.2.7's, as ``nft list ruleset`` shows it in a namespace where
Keepalived runs (names, set types, chain hooks and priorities, rule order), so that an
operator's tooling reads both alike::

    table ip keepalived {
        map vmac_map { type iface_index : iface_index }     # VMAC -> its base interface
        set vips { type ipv4_addr }                          # no_accept MASTERs' addresses
        chain out { type filter hook output priority filter - 1; policy accept;
            ip protocol igmp meta oifkind "macvlan" dup to ip daddr device oif map @vmac_map drop
            ip saddr @vips drop }
        chain in { type filter hook input priority filter - 1; policy accept;
            ip daddr @vips drop }
    }
    table ip6 keepalived {
        map vmac_map { ... }   set vmac_set { type iface_index }
        set vips { type ipv6_addr }
        set neighbor-discovery { type icmpv6_type; flags constant;
                                 elements = { nd-neighbor-solicit, nd-neighbor-advert } }
        set vips_link_local { type ipv6_addr . iface_index }        # or, for instances with
        set vips_link_local_name { type ipv6_addr . ifname }        # dont_track_primary
        chain out { icmpv6 type mld2-listener-report meta oifkind "macvlan"
                        dup to ip6 daddr device oif map @vmac_map drop
                    icmpv6 type nd-router-solicit meta oifkind "macvlan" oif @vmac_set drop
                    icmpv6 type @neighbor-discovery accept
                    ip6 saddr fe80::/10 goto out_link_local
                    ip6 saddr @vips drop }
        chain in  { icmpv6 type @neighbor-discovery accept
                    ip6 daddr fe80::/10 goto in_link_local
                    ip6 daddr @vips drop }
        chain in_link_local  { ip6 daddr . iif @vips_link_local drop }
        chain out_link_local { ip6 saddr . oif @vips_link_local drop }
    }

with a ``counter`` in every rule under ``nftables_counters`` and the base chains at
``nftables_priority`` (default -1). As Keepalived: a family's table appears when first
needed (a VMAC at start-up, or the first no_accept MASTER), addresses are set elements
added when an instance becomes MASTER and deleted when it leaves MASTER (the chains and
sets stay), and the tables are deleted at exit. Interface-keyed elements are written
with numeric interface indexes, so they can be deleted after the interface is gone.

``nft`` itself is not run per change: the commands are nftables' JSON, handed to
libnftables (Debian ``libnftables1``, pulled in by the ``nftables`` package) through
ctypes in-process (well under a millisecond per transaction), or to ``nft -j -f -``
when the library cannot be loaded. Each change is one transaction.

Departures from Keepalived: iptables/ipsets (``vrrp_iptables``, ``vrrp_ipsets``) are not
implemented -- such configurations get the nftables rules (what Keepalived itself does
when the iptables command is iptables-nft, Debian 12's default) with a warning.
"""

from __future__ import annotations

import copy
import ctypes
import ipaddress
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastka.errors import FastkaError

if TYPE_CHECKING:
    from fastka.config.model import Config

__all__ = [
    "Firewall",
    "FirewallAddress",
    "FirewallError",
    "LibNftables",
    "NftCli",
    "NftRunner",
    "for_config",
    "needed",
    "open_nftables",
    "release",
]

log = logging.getLogger("fastka.vrrp")

LINK_LOCAL6 = ipaddress.IPv6Network("fe80::/10")
_NFT_CTX_DEFAULT = 0
_NFT_CTX_OUTPUT_JSON = 1 << 4


class FirewallError(FastkaError):
    """nftables refused a transaction (the message is libnftables'/nft's)."""


class NftRunner(Protocol):
    """Runs one nftables JSON transaction; ``list_ruleset`` for status and tests."""

    def run(self, commands: Sequence[dict[str, Any]]) -> None: ...
    def list_ruleset(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class LibNftables:
    """libnftables through ctypes: one context, JSON in and out."""

    def __init__(self, soname: str = "libnftables.so.1") -> None:
        lib = ctypes.CDLL(soname, use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not ctx:
            raise FirewallError("nft_ctx_new failed")
        lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_JSON)
        # buffered, so that errors come back to us instead of going to stderr
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib: Any = lib
        self._ctx: int | None = ctx

    def _cmd(self, text: str) -> str:
        if self._ctx is None:
            raise FirewallError("libnftables context closed")
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
        out = self._lib.nft_ctx_get_output_buffer(self._ctx) or b""
        err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
        if rc != 0:
            raise FirewallError(err.decode(errors="replace").strip() or f"nftables error {rc}")
        return str(out.decode(errors="replace"))

    def run(self, commands: Sequence[dict[str, Any]]) -> None:
        self._cmd(json.dumps({"nftables": list(commands)}))

    def list_ruleset(self) -> list[dict[str, Any]]:
        doc = json.loads(self._cmd('{"nftables": [{"list": {"ruleset": null}}]}') or '{"nftables": []}')
        return list(doc.get("nftables", []))

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


class NftCli:
    """The ``nft`` command (``nft -j -f -``), when libnftables cannot be loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _nft(self, args: list[str], data: str | None) -> str:
        res = subprocess.run([self.path, *args], input=data, capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise FirewallError(res.stderr.strip() or f"nft exited with {res.returncode}")
        return res.stdout

    def run(self, commands: Sequence[dict[str, Any]]) -> None:
        self._nft(["-j", "-f", "-"], json.dumps({"nftables": list(commands)}))

    def list_ruleset(self) -> list[dict[str, Any]]:
        doc = json.loads(self._nft(["-j", "list", "ruleset"], None) or '{"nftables": []}')
        return list(doc.get("nftables", []))

    def close(self) -> None:
        pass


def open_nftables() -> NftRunner:
    """libnftables if it loads, else the ``nft`` command; FirewallError if neither exists."""
    try:
        return LibNftables()
    except OSError as exc:
        path = shutil.which("nft") or ("/usr/sbin/nft" if os.access("/usr/sbin/nft", os.X_OK) else None)
        if path is None:
            raise FirewallError(f"nftables is not available (libnftables: {exc}; no nft command)") from exc
        return NftCli(path)


@dataclass(frozen=True)
class FirewallAddress:
    """One address an instance's accept mode blocks while it is MASTER.

    ``ifindex``/``ifname``: the interface the address lives on (used only for IPv6
    link-local addresses, which are per interface); ``by_name``: key the link-local set
    by interface name (Keepalived does for instances with ``dont_track_primary``)."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ifindex: int = 0
    ifname: str = ""
    by_name: bool = False

    @property
    def family(self) -> str:
        return "ip" if self.address.version == 4 else "ip6"

    @property
    def set_name(self) -> str:
        if self.address.version == 6 and self.address in LINK_LOCAL6:
            return "vips_link_local_name" if self.by_name else "vips_link_local"
        return "vips"

    def element(self) -> Any:
        name = self.set_name
        if name == "vips_link_local":
            return {"concat": [str(self.address), self.ifindex]}
        if name == "vips_link_local_name":
            return {"concat": [str(self.address), self.ifname]}
        return str(self.address)

    def key(self) -> tuple[str, str, Any]:
        e = self.element()
        return (self.family, self.set_name, json.dumps(e, sort_keys=True))


@dataclass
class _Vmac:
    family: str
    ifindex: int
    base_ifindex: int


@dataclass
class _Table:
    family: str
    objects: set[str] = field(default_factory=set)  # "chain:out", "vmac", "vips", "set:vips_link_local"


class Firewall:
    """Keepalived's nftables table for accept mode and VMACs (see the module docstring).

    ``set_master(owner, addresses)`` when an instance without accept mode becomes MASTER,
    ``clear(owner)`` when it leaves; ``add_vmac``/``remove_vmac`` for VMAC interfaces;
    ``close()`` deletes the tables. Addresses shared by several instances stay blocked
    while any of them is MASTER. A transaction nftables refuses is logged (once per kind
    of change) and the state is left as it was."""

    def __init__(
        self,
        nft: NftRunner,
        *,
        table: str = "keepalived",
        priority: int = -1,
        counters: bool = False,
    ) -> None:
        self.nft = nft
        self.table = table or "keepalived"
        self.priority = priority
        self.counters = counters
        self._tables: dict[str, _Table] = {}
        self._owners: dict[str, set[tuple[str, str, Any]]] = {}
        self._elements: dict[tuple[str, str, Any], tuple[FirewallAddress, set[str]]] = {}
        self._vmacs: dict[int, _Vmac] = {}
        self.errors = 0
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    def start(self) -> None:
        """Remove a table of ours left by a previous run that did not stop cleanly."""
        for family in ("ip", "ip6"):
            t = {"family": family, "name": self.table}
            self._try([{"add": {"table": t}}, {"delete": {"table": t}}], "remove a stale table")

    def set_master(self, owner: str, addresses: Iterable[FirewallAddress]) -> None:
        """``owner`` (an instance) is MASTER without accept mode: block ``addresses``."""
        wanted = {a.key(): a for a in addresses}

        def build() -> list[dict[str, Any]]:
            have = self._owners.get(owner, set())
            cmds: list[dict[str, Any]] = []
            for k in have - wanted.keys():
                cmds += self._release(owner, k)
            for k, a in wanted.items():
                entry = self._elements.get(k)
                if entry is not None:
                    entry[1].add(owner)
                    continue
                cmds += self._ensure_vips(a)
                cmds.append({"add": {"element": self._elem_obj(a.family, a.set_name, [a.element()])}})
                self._elements[k] = (a, {owner})
            self._owners[owner] = set(wanted)
            return cmds

        self._commit(build, f"({owner}) set the accept-mode drop rules")

    def clear(self, owner: str) -> None:
        """``owner`` left MASTER (or stops): stop blocking its addresses."""

        def build() -> list[dict[str, Any]]:
            cmds: list[dict[str, Any]] = []
            for k in self._owners.pop(owner, set()):
                cmds += self._release(owner, k)
            return cmds

        # a failed delete leaves the elements behind: forget them anyway (logged)
        self._commit(build, f"({owner}) remove the accept-mode drop rules", keep=True)

    def retain(self, owners: Iterable[str]) -> None:
        """Unblock the addresses of every owner not in ``owners`` (after a reload)."""
        keep = set(owners)
        for o in [o for o in self._owners if o not in keep]:
            self.clear(o)

    def owners(self) -> dict[str, int]:
        """Instances with addresses blocked now, and how many."""
        return {o: len(k) for o, k in self._owners.items() if k}

    def add_vmac(self, ifindex: int, base_ifindex: int, ipv6: bool) -> None:
        """Keep IGMP (IPv4 VMAC) or MLD and router solicitations (IPv6 VMAC) off VMAC
        ``ifindex``: the reports go out on its base interface instead."""
        family = "ip6" if ipv6 else "ip"
        if ifindex in self._vmacs:
            return

        def build() -> list[dict[str, Any]]:
            cmds = self._ensure_vmac(family)
            cmds.append({"add": {"element": self._elem_obj(family, "vmac_map", [[ifindex, base_ifindex]])}})
            if ipv6:
                cmds.append({"add": {"element": self._elem_obj(family, "vmac_set", [ifindex])}})
            self._vmacs[ifindex] = _Vmac(family, ifindex, base_ifindex)
            return cmds

        self._commit(build, "set the VMAC multicast rules")

    def remove_vmac(self, ifindex: int) -> None:
        def build() -> list[dict[str, Any]]:
            v = self._vmacs.pop(ifindex, None)
            if v is None:
                return []
            pair = [[v.ifindex, v.base_ifindex]]
            cmds: list[dict[str, Any]] = [{"delete": {"element": self._elem_obj(v.family, "vmac_map", pair)}}]
            if v.family == "ip6":
                cmds.append({"delete": {"element": self._elem_obj(v.family, "vmac_set", [v.ifindex])}})
            return cmds

        self._commit(build, "remove the VMAC multicast rules", keep=True)

    def close(self) -> None:
        """Delete our tables (exit)."""
        if self._closed:
            return
        self._closed = True
        cmds = [{"delete": {"table": {"family": f, "name": self.table}}} for f in self._tables]
        if cmds:
            self._try(cmds, "delete the nftables table")
        self._tables.clear()
        self._owners.clear()
        self._elements.clear()
        self._vmacs.clear()
        self.nft.close()

    def ruleset(self) -> list[dict[str, Any]]:
        """Our tables as nftables lists them (JSON objects)."""
        out = []
        for obj in self.nft.list_ruleset():
            body = next(iter(obj.values())) if isinstance(obj, dict) and obj else None
            if isinstance(body, dict) and (body.get("table") == self.table or body.get("name") == self.table):
                out.append(obj)
        return out

    # -- building --------------------------------------------------------------------------

    def _commit(self, build: Callable[[], list[dict[str, Any]]], what: str, *, keep: bool = False) -> bool:
        """Run the commands ``build`` returns as one transaction. If nftables refuses it,
        nothing of it happened: the bookkeeping ``build`` did is undone (unless ``keep``:
        deletions are forgotten either way)."""
        saved = copy.deepcopy((self._tables, self._owners, self._elements, self._vmacs))
        cmds = _merge_elements(build())
        if not cmds or self._try(cmds, what):
            return True
        if not keep:
            self._tables, self._owners, self._elements, self._vmacs = saved
        return False

    def _try(self, cmds: list[dict[str, Any]], what: str) -> bool:
        try:
            self.nft.run(cmds)
        except (FirewallError, OSError, subprocess.SubprocessError) as exc:
            self.errors += 1
            log.error("nftables: cannot %s: %s", what, exc)
            return False
        return True

    def _release(self, owner: str, k: tuple[str, str, Any]) -> list[dict[str, Any]]:
        entry = self._elements.get(k)
        if entry is None:
            return []
        a, owners = entry
        owners.discard(owner)
        if owners:
            return []
        del self._elements[k]
        return [{"delete": {"element": self._elem_obj(a.family, a.set_name, [a.element()])}}]

    def _elem_obj(self, family: str, name: str, elems: list[Any]) -> dict[str, Any]:
        return {"family": family, "table": self.table, "name": name, "elem": elems}

    def _verdict(self, exprs: list[dict[str, Any]], verdict: dict[str, Any]) -> list[dict[str, Any]]:
        return [*exprs, *([{"counter": {"packets": 0, "bytes": 0}}] if self.counters else []), verdict]

    def _rule(self, family: str, chain: str, exprs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"add": {"rule": {"family": family, "table": self.table, "chain": chain, "expr": exprs}}}

    def _table(self, family: str) -> tuple[_Table, list[dict[str, Any]]]:
        t = self._tables.get(family)
        if t is not None:
            return t, []
        t = self._tables[family] = _Table(family)
        return t, [{"add": {"table": {"family": family, "name": self.table}}}]

    def _base_chain(self, t: _Table, name: str, hook: str) -> list[dict[str, Any]]:
        if f"chain:{name}" in t.objects:
            return []
        t.objects.add(f"chain:{name}")
        chain = {
            "family": t.family,
            "table": self.table,
            "name": name,
            "type": "filter",
            "hook": hook,
            "prio": self.priority,
            "policy": "accept",
        }
        return [{"add": {"chain": chain}}]

    def _ensure_vmac(self, family: str) -> list[dict[str, Any]]:
        t, cmds = self._table(family)
        if "vmac" in t.objects:
            return cmds
        t.objects.add("vmac")
        cmds += self._base_chain(t, "out", "output")
        tbl = self.table
        cmds.append(
            {
                "add": {
                    "map": {
                        "family": family,
                        "table": tbl,
                        "name": "vmac_map",
                        "type": "iface_index",
                        "map": "iface_index",
                    }
                }
            }
        )
        dup = {
            "dup": {
                "addr": {"payload": {"protocol": family, "field": "daddr"}},
                "dev": {"map": {"key": {"meta": {"key": "oif"}}, "data": "@vmac_map"}},
            }
        }
        macvlan = {"match": {"op": "==", "left": {"meta": {"key": "oifkind"}}, "right": "macvlan"}}
        if family == "ip":
            igmp = {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "protocol"}},
                    "right": "igmp",
                }
            }
            cmds.append(self._rule(family, "out", self._verdict([igmp, macvlan, dup], {"drop": None})))
        else:
            cmds.append(
                {"add": {"set": {"family": family, "table": tbl, "name": "vmac_set", "type": "iface_index"}}}
            )

            def icmp6(kind: str) -> dict[str, Any]:
                return {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                        "right": kind,
                    }
                }

            cmds.append(
                self._rule(
                    family,
                    "out",
                    self._verdict([icmp6("mld2-listener-report"), macvlan, dup], {"drop": None}),
                )
            )
            in_set = {"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "@vmac_set"}}
            cmds.append(
                self._rule(
                    family,
                    "out",
                    self._verdict([icmp6("nd-router-solicit"), macvlan, in_set], {"drop": None}),
                )
            )
        return cmds

    def _ensure_vips(self, a: FirewallAddress) -> list[dict[str, Any]]:
        family = a.family
        t, cmds = self._table(family)
        tbl = self.table
        if "vips" not in t.objects:
            t.objects.add("vips")
            addr_type = "ipv4_addr" if family == "ip" else "ipv6_addr"
            cmds.append({"add": {"set": {"family": family, "table": tbl, "name": "vips", "type": addr_type}}})
            cmds += self._base_chain(t, "out", "output")
            cmds += self._base_chain(t, "in", "input")

            def field_is(fld: str, right: Any) -> dict[str, Any]:
                return {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": family, "field": fld}},
                        "right": right,
                    }
                }

            if family == "ip6":
                cmds.append(
                    {
                        "add": {
                            "set": {
                                "family": family,
                                "table": tbl,
                                "name": "neighbor-discovery",
                                "type": "icmpv6_type",
                                "flags": ["constant"],
                                "elem": ["nd-neighbor-solicit", "nd-neighbor-advert"],
                            }
                        }
                    }
                )
                for name in ("in_link_local", "out_link_local"):
                    cmds.append({"add": {"chain": {"family": family, "table": tbl, "name": name}}})
                nd = {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                        "right": "@neighbor-discovery",
                    }
                }
                ll = {"prefix": {"addr": "fe80::", "len": 10}}
                cmds.append(self._rule(family, "out", self._verdict([nd], {"accept": None})))
                cmds.append(
                    self._rule(
                        family,
                        "out",
                        self._verdict([field_is("saddr", ll)], {"goto": {"target": "out_link_local"}}),
                    )
                )
                cmds.append(
                    self._rule(family, "out", self._verdict([field_is("saddr", "@vips")], {"drop": None}))
                )
                cmds.append(self._rule(family, "in", self._verdict([nd], {"accept": None})))
                cmds.append(
                    self._rule(
                        family,
                        "in",
                        self._verdict([field_is("daddr", ll)], {"goto": {"target": "in_link_local"}}),
                    )
                )
                cmds.append(
                    self._rule(family, "in", self._verdict([field_is("daddr", "@vips")], {"drop": None}))
                )
            else:
                cmds.append(
                    self._rule(family, "out", self._verdict([field_is("saddr", "@vips")], {"drop": None}))
                )
                cmds.append(
                    self._rule(family, "in", self._verdict([field_is("daddr", "@vips")], {"drop": None}))
                )
        name = a.set_name
        if name != "vips" and f"set:{name}" not in t.objects:
            t.objects.add(f"set:{name}")
            by_name = name == "vips_link_local_name"
            cmds.append(
                {
                    "add": {
                        "set": {
                            "family": family,
                            "table": tbl,
                            "name": name,
                            "type": ["ipv6_addr", "ifname" if by_name else "iface_index"],
                        }
                    }
                }
            )
            for chain, fld, meta in (("in_link_local", "daddr", "iif"), ("out_link_local", "saddr", "oif")):
                key = {
                    "concat": [
                        {"payload": {"protocol": "ip6", "field": fld}},
                        {"meta": {"key": meta + ("name" if by_name else "")}},
                    ]
                }
                match = {"match": {"op": "==", "left": key, "right": f"@{name}"}}
                cmds.append(self._rule(family, chain, self._verdict([match], {"drop": None})))
        return cmds


def _merge_elements(cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``add``/``delete element`` command per set, after the tables, sets and rules
    (a MASTER with 100 VIPs costs one command, not 100)."""
    rest: list[dict[str, Any]] = []
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for c in cmds:
        verb, body = next(iter(c.items()))
        elem = body.get("element") if isinstance(body, dict) else None
        if elem is None:
            rest.append(c)
            continue
        key = (verb, elem["family"], elem["table"], elem["name"])
        if key in merged:
            merged[key][verb]["element"]["elem"].extend(elem["elem"])
        else:
            merged[key] = {verb: {"element": {**elem, "elem": list(elem["elem"])}}}
    return rest + list(merged.values())


# --------------------------------------------------------------------------- one per process

_shared: Firewall | None = None
_shared_key: tuple[str, int, bool] | None = None
_unavailable_logged = False


def needed(config: Config) -> bool:
    """Keepalived's rule: a firewall when ``nftables`` (or ``vrrp_iptables``) is configured,
    or when some instance has ``no_accept`` (explicit or by strict mode) or a VMAC."""
    g = config.global_defs
    if g.nftables is not None or g.vrrp_iptables is not None:
        return True
    return any((not i.accept) or i.use_vmac is not None for i in config.vrrp_instances.values())


def for_config(config: Config) -> Firewall | None:
    """The VRRP child's firewall for ``config``: the one already running if its table and
    settings are unchanged (a reload keeps the table and what is blocked in it), else a
    new one (after closing the old). None when no firewall is needed or nftables is
    missing (logged once)."""
    global _shared, _shared_key, _unavailable_logged
    g = config.global_defs
    if not needed(config):
        release()
        return None
    key = (g.nftables or "keepalived", g.nftables_priority, g.nftables_counters)
    if _shared is not None and _shared_key == key:
        return _shared
    release()
    if g.nftables is None:
        if g.vrrp_iptables is not None:
            log.warning("vrrp_iptables is not supported by fastka: using nftables (table keepalived) instead")
        else:
            log.info("use_vmac or no_accept/strict specified, but no firewall configured - using nftables")
    try:
        nft = open_nftables()
    except FirewallError as exc:
        if not _unavailable_logged:
            _unavailable_logged = True
            log.error("%s: no_accept is not enforced and VMAC IGMP/MLD is not filtered", exc)
        return None
    fw = Firewall(nft, table=key[0], priority=key[1], counters=key[2])
    fw.start()
    _shared, _shared_key = fw, key
    return fw


def release() -> None:
    """Delete the tables and forget the firewall (the VRRP child stops)."""
    global _shared, _shared_key
    if _shared is not None:
        _shared.close()
    _shared = _shared_key = None
