"""The ``ip``-style entries of address, route and rule blocks (catalogue §5).

``virtual_ipaddress``/``static_ipaddress`` lines follow ``ip addr add``,
``virtual_routes``/``static_routes`` follow ``ip route add`` and
``virtual_rules``/``static_rules`` follow ``ip rule add`` (no abbreviations, as Keepalived).
Each parser takes the words of one line and returns a model object, or ``None`` after
reporting why the entry is skipped.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable

from fastka.config.diagnostics import Diagnostics
from fastka.config.model import (
    Family,
    IPAddress,
    IpAddress,
    IPInterface,
    IPNetwork,
    Location,
    Nexthop,
    Route,
    Rule,
)

SCOPES = {"global": "global", "site": "site", "link": "link", "host": "host", "nowhere": "nowhere"}
ROUTE_TYPES = frozenset(
    {
        "unicast",
        "local",
        "broadcast",
        "anycast",
        "multicast",
        "throw",
        "unreachable",
        "prohibit",
        "blackhole",
        "nat",
    }
)
RULE_TYPES = frozenset({"blackhole", "unreachable", "prohibit", "nop"})
_BUILTIN_TABLES = {"main": 254, "local": 255, "default": 253, "unspec": 0}
# Route options taking one value, kept verbatim in Route.options.
_ROUTE_VALUE_OPTIONS = frozenset(
    {
        "mtu",
        "advmss",
        "rtt",
        "rttvar",
        "reordering",
        "window",
        "cwnd",
        "ssthresh",
        "initcwnd",
        "initrwnd",
        "rto_min",
        "hoplimit",
        "features",
        "quickack",
        "congctl",
        "fastopen_no_cookie",
        "ttl-propagate",
        "vrf",
        "as",
    }
)

Report = Callable[[str], None]


def parse_ip(word: str) -> IPAddress | None:
    """An IPv4 or IPv6 address as ``inet_pton()`` reads it (what Keepalived uses)."""
    try:
        if ":" in word:
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, word))
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, word))
    except (OSError, ValueError):
        return None


def parse_interface(word: str) -> IPInterface | None:
    """``IP[/LEN]`` with the host bits kept (a VIP); no length = /32 or /128."""
    address, slash, length = word.partition("/")
    ip = parse_ip(address)
    if ip is None:
        return None
    if not slash:
        return ipaddress.IPv4Interface(ip) if ip.version == 4 else ipaddress.IPv6Interface(ip)
    if not (length.isascii() and length.isdigit()) or int(length) > ip.max_prefixlen:
        return None
    if ip.version == 4:
        return ipaddress.IPv4Interface((int(ip), int(length)))
    return ipaddress.IPv6Interface((int(ip), int(length)))


def parse_prefix(word: str, family: Family | None = None) -> IPNetwork | None:
    """``PFX`` for a route destination or rule selector; ``default``/``all`` = everything."""
    if word in ("default", "all", "any"):
        return ipaddress.ip_network("::/0" if family is Family.INET6 else "0.0.0.0/0")
    try:
        return ipaddress.ip_network(word, strict=False)
    except ValueError:
        return None


def route_tables(etc_dir: str = "/etc/iproute2", usr_dir: str = "/usr/share/iproute2") -> dict[str, int]:
    """Routing table names: the builtins plus ``rt_tables`` (and ``rt_tables.d/*.conf``)."""
    tables = dict(_BUILTIN_TABLES)
    paths = [os.path.join(d, "rt_tables") for d in (usr_dir, etc_dir)]
    for d in (usr_dir, etc_dir):
        sub = os.path.join(d, "rt_tables.d")
        if os.path.isdir(sub):
            paths.extend(os.path.join(sub, f) for f in sorted(os.listdir(sub)) if f.endswith(".conf"))
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split("#", 1)[0].split()
                    if len(parts) >= 2:
                        try:
                            tables[parts[1]] = int(parts[0], 0)
                        except ValueError:
                            continue
        except OSError:
            continue
    return tables


def _uint(word: str, hi: int = 0xFFFFFFFF) -> int | None:
    try:
        value = int(word, 0)
    except ValueError:
        return None
    return value if 0 <= value <= hi else None


class EntryParser:
    """Parses address/route/rule entries, reporting problems to ``diag``."""

    def __init__(self, diag: Diagnostics, tables: dict[str, int] | None = None) -> None:
        self.diag = diag
        self._tables = tables

    @property
    def tables(self) -> dict[str, int]:
        if self._tables is None:
            self._tables = route_tables()
        return self._tables

    def table(self, word: str) -> int | None:
        if word in self.tables:
            return self.tables[word]
        return _uint(word)

    # ------------------------------------------------------------------ addresses
    def address(self, words: list[str], loc: Location) -> IpAddress | None:
        if not words:
            return None
        addr = parse_interface(words[0])
        if addr is None:
            self.diag.error(f"VRRP parsed invalid IP {words[0]}. skipping IP...", loc)
            return None
        entry = IpAddress(address=addr, location=loc)
        i = 1
        n = len(words)

        def value(name: str) -> str | None:
            nonlocal i
            if i + 1 >= n:
                self.diag.error(f"{name} requires a value for {words[0]} - ignoring", loc)
                i += 1
                return None
            i += 1
            return words[i]

        while i < n:
            w = words[i]
            if w == "dev":
                v = value(w)
                if v is not None:
                    entry.dev = v
            elif w == "scope":
                v = value(w)
                if v is not None:
                    if v in SCOPES or v.isdigit():
                        entry.scope = v
                    else:
                        self.diag.error(f"Invalid scope '{v}' specified for {words[0]} - ignoring", loc)
            elif w in ("brd", "broadcast"):
                v = value(w)
                if v in ("+", "-"):
                    entry.broadcast_mode = v
                elif v is not None:
                    b = parse_ip(v)
                    if b is None or b.version != addr.version:
                        self.diag.error(f"Invalid broadcast address '{v}' for {words[0]} - ignoring", loc)
                    else:
                        entry.broadcast = b
            elif w == "label":
                v = value(w)
                if v is not None:
                    entry.label = v
            elif w == "peer":
                v = value(w)
                if v is not None:
                    p = parse_interface(v)
                    if p is None or p.version != addr.version:
                        self.diag.error(f"Invalid peer address '{v}' for {words[0]} - ignoring", loc)
                    else:
                        entry.peer = p
            elif w == "home":
                entry.home = True
            elif w in ("-nodad", "nodad"):
                entry.nodad = True
            elif w == "mngtmpaddr":
                entry.mngtmpaddr = True
            elif w == "noprefixroute":
                entry.noprefixroute = True
            elif w == "autojoin":
                entry.autojoin = True
            elif w == "preferred_lft":
                v = value(w)
                if v == "forever":
                    entry.preferred_lft = 0xFFFFFFFF
                elif v is not None:
                    lft = _uint(v)
                    if lft is None:
                        self.diag.error(f"Invalid preferred_lft '{v}' for {words[0]} - ignoring", loc)
                    else:
                        entry.preferred_lft = lft
            elif w == "no_track":
                entry.no_track = True
            elif w == "track_group":
                v = value(w)
                if v is not None:
                    entry.track_group = v
            elif w == "use_vmac":
                entry.use_vmac = True
            else:
                self.diag.warning(f"Unknown configuration entry '{w}' for ip address - ignoring", loc)
            i += 1
        return entry

    # ------------------------------------------------------------------ routes
    def route(self, words: list[str], loc: Location) -> Route | None:
        dst: IPNetwork | None = None
        dst_word: str | None = None
        fields: dict[str, object] = {}
        options: dict[str, str] = {}
        nexthops: list[Nexthop] = []
        family: Family | None = None
        route_type = "unicast"
        i = 0
        n = len(words)
        ok = True

        def need(name: str) -> str | None:
            nonlocal i, ok
            if i + 1 >= n:
                self.diag.error(f"Route option '{name}' is missing its value - skipping route", loc)
                ok = False
                i += 1
                return None
            i += 1
            return words[i]

        def address(name: str, word: str | None) -> IPAddress | None:
            nonlocal ok
            if word is None:
                return None
            a = parse_ip(word)
            if a is None:
                self.diag.error(f"Invalid route {name} address '{word}' - skipping route", loc)
                ok = False
            return a

        while i < n and ok:
            w = words[i]
            if w == "src":
                fields["src"] = address("src", need(w))
            elif w == "from":
                v = need(w)
                if v is not None:
                    p = parse_prefix(v, family)
                    if p is None:
                        self.diag.error(f"Invalid route from prefix '{v}' - skipping route", loc)
                        ok = False
                    fields["from_prefix"] = p
            elif w == "to":
                v = need(w)
                if v is not None:
                    dst_word = v
            elif w in ("via", "gw"):
                if w == "gw":
                    self.diag.warning('"gw" for routes is deprecated. Please use "via"', loc)
                v = need(w)
                if v in ("inet", "inet6") and i + 1 < n:
                    i += 1
                    v = words[i]
                fields["via"] = address("via", v)
            elif w == "or":
                self.diag.warning('"or" for routes is deprecated. Please use "nexthop"', loc)
                a = address("or", need(w))
                if a is not None:
                    if not nexthops and fields.get("via") is not None:
                        via = fields.pop("via")
                        assert isinstance(via, ipaddress.IPv4Address | ipaddress.IPv6Address)
                        nexthops.append(Nexthop(via=via))
                    nexthops.append(Nexthop(via=a))
            elif w in ("dev", "oif"):
                v = need(w)
                if v is not None:
                    fields["dev"] = v
            elif w in ("table", "lookup"):
                v = need(w)
                if v is not None:
                    t = self.table(v)
                    if t is None:
                        self.diag.error(f"Invalid route table '{v}' - skipping route", loc)
                        ok = False
                    fields["table"] = t
            elif w in ("metric", "priority", "preference"):
                v = need(w)
                if v is not None:
                    m = _uint(v)
                    if m is None:
                        self.diag.error(f"Invalid route metric '{v}' - skipping route", loc)
                        ok = False
                    fields["metric"] = m
            elif w == "scope":
                v = need(w)
                if v is not None:
                    if v not in SCOPES and not v.isdigit():
                        self.diag.error(f"Invalid route scope '{v}' - skipping route", loc)
                        ok = False
                    fields["scope"] = v
            elif w in ("proto", "protocol"):
                v = need(w)
                if v is not None:
                    fields["protocol"] = v
            elif w in ("tos", "dsfield"):
                v = need(w)
                if v is not None:
                    t = _uint(v, 255)
                    if t is None:
                        self.diag.error(f"Invalid route tos '{v}' - skipping route", loc)
                        ok = False
                    fields["tos"] = t
            elif w == "type":
                v = need(w)
                if v is not None:
                    if v not in ROUTE_TYPES:
                        self.diag.error(f"Invalid route type '{v}' - skipping route", loc)
                        ok = False
                    route_type = v
            elif w in ROUTE_TYPES:
                route_type = w
            elif w == "onlink":
                fields["onlink"] = True
            elif w == "realms":
                v = need(w)
                if v is not None:
                    fields["realms"] = v
            elif w == "pref":
                v = need(w)
                if v is not None:
                    if v not in ("low", "medium", "high"):
                        self.diag.error(f"Invalid route pref '{v}' - skipping route", loc)
                        ok = False
                    fields["pref"] = v
            elif w == "expires":
                v = need(w)
                if v is not None:
                    fields["expires"] = _uint(v)
            elif w == "nexthop":
                hop = Nexthop()
                while i + 1 < n and words[i + 1] in ("via", "dev", "weight", "onlink", "realms"):
                    i += 1
                    key = words[i]
                    if key == "onlink":
                        hop.onlink = True
                        continue
                    v = need(key)
                    if v is None:
                        break
                    if key == "via":
                        if v in ("inet", "inet6") and i + 1 < n:
                            i += 1
                            v = words[i]
                        hop.via = address("nexthop via", v)
                    elif key == "dev":
                        hop.dev = v
                    elif key == "weight":
                        weight = _uint(v, 256)
                        if weight is None or weight == 0:
                            self.diag.error(f"Invalid nexthop weight '{v}' - skipping route", loc)
                            ok = False
                        hop.weight = weight
                    else:
                        hop.realms = v
                nexthops.append(hop)
            elif w == "encap":
                # ``encap TYPE ...`` runs to the end of the entry or the next nexthop.
                j = i + 1
                while j < n and words[j] != "nexthop":
                    j += 1
                options["encap"] = " ".join(words[i + 1 : j])
                i = j - 1
            elif w in _ROUTE_VALUE_OPTIONS:
                v = need(w)
                if v == "lock" and i + 1 < n:
                    i += 1
                    v = "lock " + words[i]
                if v is not None:
                    options[w] = v
            elif w in ("inet", "inet6"):
                family = Family(w)
            elif w in ("add", "append", "prepend"):
                fields["mode"] = w
            elif w == "no_track":
                fields["no_track"] = True
            elif w == "track_group":
                v = need(w)
                if v is not None:
                    fields["track_group"] = v
            elif dst_word is None:
                dst_word = w
            else:
                self.diag.error(f"Unknown route option '{w}' - skipping route", loc)
                ok = False
            i += 1
        if not ok:
            return None
        if dst_word is None:
            self.diag.error("Route has no destination - skipping", loc)
            return None
        via = fields.get("via")
        if family is None and isinstance(via, ipaddress.IPv6Address):
            family = Family.INET6
        dst = parse_prefix(dst_word, family)
        if dst is None:
            self.diag.error(f"Invalid route destination '{dst_word}' - skipping route", loc)
            return None
        route = Route(dst=dst, type=route_type, nexthops=nexthops, options=options, location=loc)
        for name, val in fields.items():
            setattr(route, name, val)
        addresses: list[IPAddress | IPNetwork | None] = [route.src, route.via, route.from_prefix]
        addresses.extend(h.via for h in nexthops)
        if any(a is not None and a.version != dst.version for a in addresses):
            self.diag.error(f"Route {dst_word} mixes IPv4 and IPv6 addresses - skipping route", loc)
            return None
        return route

    # ------------------------------------------------------------------ rules
    def rule(self, words: list[str], loc: Location) -> Rule | None:
        rule = Rule(location=loc)
        family: Family | None = None
        i = 0
        n = len(words)

        def need(name: str) -> str | None:
            nonlocal i
            if i + 1 >= n:
                self.diag.error(f"Rule option '{name}' is missing its value - skipping rule", loc)
                return None
            i += 1
            return words[i]

        def prefix(name: str, word: str | None) -> IPNetwork | bool | None:
            if word is None:
                return False
            p = parse_prefix(word, family)
            if p is None:
                self.diag.error(f"VRRP parsed invalid IP {word}. skipping IP...", loc)
                self.diag.error(f"Invalid rule {name} address {word}", loc)
                return False
            return p

        def port_range(word: str | None) -> tuple[int, int] | None:
            if word is None:
                return None
            lo, _, hi = word.partition("-")
            a, b = _uint(lo, 65535), _uint(hi or lo, 65535)
            return (a, b) if a is not None and b is not None and a <= b else None

        while i < n:
            w = words[i]
            if w == "from":
                p = prefix("from", need(w))
                if p is False:
                    return None
                rule.from_prefix = p if isinstance(p, ipaddress.IPv4Network | ipaddress.IPv6Network) else None
            elif w == "to":
                p = prefix("to", need(w))
                if p is False:
                    return None
                rule.to_prefix = p if isinstance(p, ipaddress.IPv4Network | ipaddress.IPv6Network) else None
            elif w == "not":
                rule.invert = True
            elif w in ("iif", "dev"):
                rule.iif = need(w)
            elif w == "oif":
                rule.oif = need(w)
            elif w in ("tos", "dsfield"):
                v = need(w)
                rule.tos = _uint(v, 255) if v is not None else None
                if rule.tos is None:
                    self.diag.error(f"Invalid rule tos '{v}' - skipping rule", loc)
                    return None
            elif w == "fwmark":
                v = need(w)
                if v is None:
                    return None
                mark, _, mask = v.partition("/")
                rule.fwmark = _uint(mark)
                rule.fwmask = _uint(mask) if mask else None
                if rule.fwmark is None or (mask and rule.fwmask is None):
                    self.diag.error(f"Invalid rule fwmark '{v}' - skipping rule", loc)
                    return None
            elif w in ("table", "lookup"):
                v = need(w)
                rule.table = self.table(v) if v is not None else None
                if rule.table is None:
                    self.diag.error(f"Invalid rule table '{v}' - skipping rule", loc)
                    return None
            elif w in ("preference", "priority", "order", "pref"):
                v = need(w)
                rule.preference = _uint(v) if v is not None else None
                if rule.preference is None:
                    self.diag.error(f"Invalid rule preference '{v}' - skipping rule", loc)
                    return None
            elif w == "realms":
                rule.realms = need(w)
            elif w == "goto":
                v = need(w)
                rule.goto = _uint(v) if v is not None else None
                if rule.goto is None:
                    self.diag.error(f"Invalid rule goto '{v}' - skipping rule", loc)
                    return None
            elif w in RULE_TYPES:
                rule.type = w
            elif w == "type":
                v = need(w)
                if v not in RULE_TYPES and v not in ("unicast",):
                    self.diag.error(f"Invalid rule type '{v}' - skipping rule", loc)
                    return None
                rule.type = None if v == "unicast" else v
            elif w in ("suppress_prefixlength", "sup_pl"):
                v = need(w)
                rule.suppress_prefixlength = _uint(v, 128) if v is not None else None
                if rule.suppress_prefixlength is None:
                    self.diag.error(f"Invalid rule suppress_prefixlength '{v}' - skipping rule", loc)
                    return None
            elif w in ("suppress_ifgroup", "sup_group"):
                rule.suppress_ifgroup = need(w)
            elif w == "uidrange":
                r = port_range(need(w))
                if r is None:
                    self.diag.error("Invalid rule uidrange - skipping rule", loc)
                    return None
                rule.uidrange = r
            elif w == "l3mdev":
                rule.l3mdev = True
            elif w == "protocol":
                rule.protocol = need(w)
            elif w == "ipproto":
                rule.ipproto = need(w)
            elif w in ("sport", "dport"):
                r = port_range(need(w))
                if r is None:
                    self.diag.error(f"Invalid rule {w} - skipping rule", loc)
                    return None
                setattr(rule, w, r)
            elif w == "tunnel-id":
                v = need(w)
                rule.tunnel_id = _uint(v, (1 << 64) - 1) if v is not None else None
            elif w in ("inet", "inet6"):
                family = Family(w)
            elif w == "no_track":
                rule.no_track = True
            elif w == "track_group":
                rule.track_group = need(w)
            else:
                self.diag.error(f"Unknown rule option '{w}' - skipping rule", loc)
                return None
            i += 1
        prefixes = [p for p in (rule.from_prefix, rule.to_prefix) if p is not None and p.prefixlen > 0]
        if prefixes:
            versions = {p.version for p in prefixes}
            if len(versions) > 1:
                self.diag.error("Rule mixes IPv4 and IPv6 addresses - skipping rule", loc)
                return None
            rule.family = Family.INET if versions == {4} else Family.INET6
        elif family is not None:
            rule.family = family
        return rule
