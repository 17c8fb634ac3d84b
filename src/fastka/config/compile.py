"""AST -> validated model: defaults, cross references and Keepalived's semantic checks.

:func:`load` is the public entry point (re-exported as ``fastka.config.load``): it
preprocesses the file, builds the block tree, applies the keyword tables
(:mod:`fastka.config.grammar`) and then completes the model the way Keepalived does after
parsing (``vrrp_complete_instance()``, ``validate_check_config()`` ...): every default is
applied, names are resolved, and the same problems are reported with the same severity.
Messages follow Keepalived's wording where Keepalived has one (catalogue §1,
samples.txt); each carries the file:line of the keyword concerned when there is one.

``load`` never raises for anything in the file: problems come back as
:class:`~fastka.config.diagnostics.Diagnostic` s. The daemon loads the new file on
SIGHUP, checks :func:`~fastka.config.diagnostics.has_errors`, and diffs the old and new
:class:`~fastka.config.model.Config` by each object's ``key()``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pwd
import socket
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from fastka.config import grammar as g
from fastka.config import model as m
from fastka.config.diagnostics import Diagnostic, Diagnostics
from fastka.config.ipsyntax import EntryParser
from fastka.config.lexer import DEFAULT_MAX_LINES, Line, Preprocessor
from fastka.config.model import Location

_log = logging.getLogger("fastka.config")
InterfaceCheck = Callable[[str], bool]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def interface_exists(name: str) -> bool:
    """Whether an interface of this name exists in the current network namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


@dataclass(slots=True)
class Host:
    """What compile needs to know about the machine; tests replace it.

    ``interfaces``: None = don't check interfaces (the daemon waits for them; ``-t``
    checks). ``user_exists``/``find_script``/``insecure`` drive the script checks.
    """

    hostname: str
    username: str = "root"
    interfaces: InterfaceCheck | None = None
    check_scripts: bool = True
    path: str = DEFAULT_PATH

    @staticmethod
    def current(*, interfaces: InterfaceCheck | None = None, check_scripts: bool = True) -> Host:
        try:
            username = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            username = str(os.geteuid())
        return Host(
            hostname=os.uname().nodename,
            username=username,
            interfaces=interfaces,
            check_scripts=check_scripts,
            path=os.environ.get("PATH") or DEFAULT_PATH,
        )


# --------------------------------------------------------------------------- entry points
def load(
    path: str,
    *,
    config_id: str | None = None,
    host: Host | None = None,
    environ: Mapping[str, str] | None = None,
    random_seed: int | None = None,
    all_config: bool = False,
    max_lines: int = DEFAULT_MAX_LINES,
    on_read: ReadHook | None = None,
) -> tuple[m.Config, Diagnostics]:
    """Compile the configuration file ``path``.

    ``config_id`` is ``-i`` (default: the host name up to the first dot), ``all_config``
    is ``-e``. Returns the compiled model and every diagnostic, in the order found.
    ``on_read(lines, diagnostics, files)`` sees the preprocessed lines (includes, macros
    and conditionals done) before they are compiled: the daemon's consolidated copy of
    the configuration (:mod:`fastka.configcopy`, compiled again by
    :func:`load_preprocessed`).
    """
    host = host or Host.current()
    cid = config_id or host.hostname.split(".", 1)[0]
    diag = Diagnostics()
    pre = Preprocessor(
        diag,
        config_id=cid,
        environ=environ,
        random_seed=random_seed,
        all_config=all_config,
        max_lines=max_lines,
    )
    return _run(lambda: pre.read_file(path), pre, diag, host, on_read)


# on_read hook of load(): (preprocessed lines, preprocessing diagnostics, files read)
ReadHook = Callable[[Sequence[Line], Sequence[Diagnostic], Sequence[str]], None]


def load_preprocessed(
    lines: list[Line],
    diagnostics: Iterable[Diagnostic],
    files: Sequence[str],
    *,
    host: Host | None = None,
) -> tuple[m.Config, Diagnostics]:
    """Compile lines that a preprocessor produced earlier (see ``load(on_read=...)``),
    reporting that preprocessing's ``diagnostics`` first: the same result as ``load`` of
    the files as they were then."""
    diag = Diagnostics(diagnostics)
    config, diag = _run(lambda: lines, None, diag, host or Host.current())
    config.files = list(files)
    return config, diag


def loads(
    text: str,
    *,
    filename: str = "keepalived.conf",
    directory: str | None = None,
    config_id: str | None = None,
    host: Host | None = None,
    environ: Mapping[str, str] | None = None,
    random_seed: int | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
    include_root: str | None = None,
) -> tuple[m.Config, Diagnostics]:
    """Compile configuration text (as if read from ``filename`` in ``directory``).

    ``include_root`` confines ``include`` to files below that directory.
    """
    host = host or Host(hostname="localhost", check_scripts=False)
    cid = config_id or host.hostname.split(".", 1)[0]
    diag = Diagnostics()
    pre = Preprocessor(
        diag,
        config_id=cid,
        environ=environ,
        random_seed=random_seed,
        max_lines=max_lines,
        include_root=include_root,
    )
    return _run(lambda: pre.read_string(text, filename, directory), pre, diag, host)


INTERNAL_ERROR = "internal error while compiling the configuration"


def _run(
    read: Callable[[], list[Line]],
    pre: Preprocessor | None,
    diag: Diagnostics,
    host: Host,
    on_read: ReadHook | None = None,
) -> tuple[m.Config, Diagnostics]:
    """Preprocess and compile; a bug in fastka becomes a FATAL diagnostic, not a traceback
    in ``fastka -t`` (the fuzz and property tests treat it as a failure)."""
    config = m.Config()
    try:
        with _no_cyclic_gc():
            lines = read()
            if on_read is not None and pre is not None:
                on_read(lines, list(diag), list(dict.fromkeys(pre.files)))
            config = compile_lines(lines, diag, host)
    except (Exception, RecursionError) as exc:
        _log.exception(INTERNAL_ERROR)
        diag.fatal(f"{INTERNAL_ERROR}: {exc!r} - please report this as a fastka bug")
    if pre is not None:
        config.files = list(dict.fromkeys(pre.files))
    return config, diag


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a configuration is built.

    Compiling allocates hundreds of thousands of small acyclic objects; every generation-2
    collection would walk all of them again (about a third of the time on big files).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_lines(lines: Iterable[Line], diag: Diagnostics, host: Host) -> m.Config:
    """Build the model from preprocessed lines (the part after the preprocessor)."""
    config = m.Config()
    tree = g.build_tree(lines, diag)
    ctx = g.Ctx(diag, config, EntryParser(diag))
    ctx.push(config)
    g.walk(ctx, tree, g.ROOT)
    Completer(ctx, host).run()
    return config


# --------------------------------------------------------------------------- completion
class Completer:
    def __init__(self, ctx: g.Ctx, host: Host) -> None:
        self.ctx = ctx
        self.diag = ctx.diag
        self.config = ctx.config
        self.host = host
        self.glob = ctx.config.global_defs

    def run(self) -> None:
        self.global_defs()
        self.vrrp_scripts()
        self.track_files()
        self.track_processes()
        for inst in list(self.config.vrrp_instances.values()):
            if not self.vrrp_instance(inst):
                del self.config.vrrp_instances[inst.name]
        self.duplicate_vrids()
        self.sync_groups()
        self.lvs_sync_daemon()
        namespace = self.glob.net_namespace
        if namespace is not None and (self.host.interfaces is not None or self.host.check_scripts):
            # Interfaces (and what runs in there) belong to that namespace, not ours:
            # Keepalived 2.2.7's -t skips these checks too.
            self.diag.info(f"net_namespace {namespace}: interface and script checks skipped")
            self.host.interfaces = None
            self.host.check_scripts = False
        self.interfaces()
        self.virtual_server_groups()
        kept = []
        for vs in self.config.virtual_servers:
            if self.virtual_server(vs):
                kept.append(vs)
        self.config.virtual_servers = kept
        if self.host.check_scripts:
            ScriptChecker(self).run()

    # ------------------------------------------------------------------ helpers
    def set_(self, obj: object, name: str) -> bool:
        return self.ctx.was_set(obj, name)

    def at(self, obj: object, name: str) -> Location | None:
        return self.ctx.where(obj, name) or getattr(obj, "location", None)

    # ------------------------------------------------------------------ global_defs
    def global_defs(self) -> None:
        gd = self.glob
        host = self.host
        if not gd.router_id:
            gd.router_id = host.hostname
        if not gd.smtp_helo_name:
            gd.smtp_helo_name = host.hostname
        if not gd.notification_email_from:
            gd.notification_email_from = f"{host.username}@{host.hostname}"
        if gd.vrrp_min_garp:
            if not self.set_(gd, "vrrp_garp_master_repeat"):
                gd.vrrp_garp_master_repeat = 1
            if not self.set_(gd, "vrrp_garp_master_delay"):
                gd.vrrp_garp_master_delay = 0.0
            if not self.set_(gd, "vrrp_garp_master_refresh"):
                gd.vrrp_garp_master_refresh = 0.0
        if gd.vrrp_garp_master_repeat == 0:
            gd.vrrp_garp_master_repeat = 1
        if gd.vrrp_garp_master_refresh_repeat == 0:
            gd.vrrp_garp_master_refresh_repeat = 1
        if not self.set_(gd, "vrrp_garp_lower_prio_delay"):
            gd.vrrp_garp_lower_prio_delay = gd.vrrp_garp_master_delay
        if not self.set_(gd, "vrrp_garp_lower_prio_repeat"):
            gd.vrrp_garp_lower_prio_repeat = gd.vrrp_garp_master_repeat
        if gd.vmac_addr_prefix is None:
            gd.vmac_addr_prefix = gd.vmac_prefix
        for address in self.config.static_ipaddress:
            if address.dev is None:
                address.dev = gd.default_interface
        for name in ("notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo"):
            fifo: m.NotifyFifo | None = getattr(gd, name)
            if fifo is not None and not fifo.path:
                self.diag.error(f"{name}_script specified without {name} - ignoring", fifo.location)
                setattr(gd, name, None)
        if gd.notify_fifo is not None:
            for name in ("vrrp_notify_fifo", "lvs_notify_fifo"):
                other: m.NotifyFifo | None = getattr(gd, name)
                if other is not None and other.path == gd.notify_fifo.path:
                    kind = "vrrp" if name.startswith("vrrp") else "LVS"
                    self.diag.warning(
                        f"notify FIFO {other.path} has been specified for global and {kind} FIFO - "
                        f"ignoring {kind} FIFO",
                        other.location,
                    )
                    setattr(gd, name, None)

    # ------------------------------------------------------------------ trackers
    def vrrp_scripts(self) -> None:
        for name, vs in list(self.config.vrrp_scripts.items()):
            if not vs.script.argv:
                where = self.ctx.end_of(vs) or vs.location
                self.diag.error(f"No script set for vrrp_script {name} - removing", where)
                del self.config.vrrp_scripts[name]
                continue
            user = self.ctx.get(vs, "user")
            if user is not None:
                vs.script.user, vs.script.group, vs.script.supplementary_groups = user
            if self.set_(vs, "interval") and vs.interval == 0:
                self.diag.error(
                    f"vrrp_script {name} interval 0 is invalid - setting to 1 second", self.at(vs, "interval")
                )
                vs.interval = 1.0
            if not self.set_(vs, "timeout") or vs.timeout == 0:
                vs.timeout = vs.interval
            if abs(vs.weight) > 253:
                self.diag.warning(
                    f"vrrp_script {name} weight {vs.weight} is out of range [-253, 253] - setting to "
                    f"{253 if vs.weight > 0 else -253}",
                    self.at(vs, "weight"),
                )
                vs.weight = 253 if vs.weight > 0 else -253

    def track_files(self) -> None:
        for name, tf in list(self.config.track_files.items()):
            if not tf.file:
                self.diag.error(
                    f"No file set for track_file {name} - removing", self.ctx.end_of(tf) or tf.location
                )
                del self.config.track_files[name]

    def track_processes(self) -> None:
        for name, tp in list(self.config.track_processes.items()):
            if not tp.process:
                self.diag.error(
                    f"No process specified for vrrp_track_process {name} - removing",
                    self.ctx.end_of(tp) or tp.location,
                )
                del self.config.track_processes[name]
                continue
            if tp.quorum_max is not None and tp.quorum_max < tp.quorum and tp.quorum_max != 0:
                self.diag.error(
                    f"vrrp_track_process {name} quorum_max {tp.quorum_max} is less than quorum {tp.quorum} - "
                    "setting quorum_max to quorum",
                    self.at(tp, "quorum_max"),
                )
                tp.quorum_max = tp.quorum

    def resolve_tracking(self, owner: str, obj: m.VrrpInstance | m.SyncGroup) -> None:
        """Resolve track_script/track_file/track_process/track_bfd names and weights."""
        tables: list[tuple[str, str, Mapping[str, object]]] = [
            ("track_script", "track script", self.config.vrrp_scripts),
            ("track_file", "track file", self.config.track_files),
            ("track_process", "track process", self.config.track_processes),
            ("track_bfd", "track bfd", self.config.bfd_instances),
        ]
        for attr, what, known in tables:
            kept: list[m.TrackRef] = []
            for ref in getattr(obj, attr):
                target = known.get(ref.name)
                if target is None:
                    self.diag.warning(f"({owner}) {what} {ref.name} not found, ignoring...", ref.location)
                    continue
                if not self.ctx.was_set(ref, "weight"):
                    ref.weight = getattr(target, "weight", 0)
                    if not self.ctx.was_set(ref, "weight_reverse"):
                        ref.weight_reverse = getattr(target, "weight_reverse", False)
                kept.append(ref)
            setattr(obj, attr, kept)

    # ------------------------------------------------------------------ vrrp_instance
    def vrrp_instance(self, inst: m.VrrpInstance) -> bool:
        name = inst.name
        seen = self.ctx.seen(inst)
        gd = self.glob
        diag = self.diag
        if inst.virtual_router_id == 0:
            diag.error(f"({name}) the virtual router id must be set", inst.location)
            return False
        if inst.interface is None and inst.unicast_src_ip is None:
            diag.error(f"({name}) Unknown interface!", inst.location)
            return False
        if inst.interface == "lo":
            diag.error(f"({name}) cannot use the loopback interface lo for VRRP", self.at(inst, "interface"))
        # -- address family: VIPs first, then the unicast/multicast addresses
        family: m.Family | None = None
        if inst.native_ipv6:
            family = m.Family.INET6
        elif inst.virtual_ipaddress:
            family = inst.virtual_ipaddress[0].family
        else:
            for address in (inst.unicast_src_ip, *(p.address for p in inst.unicast_peer), inst.mcast_src_ip):
                if address is not None:
                    family = m.Family.of(address)
                    break
        inst.family = family or m.Family.INET
        vips = []
        for vip in inst.virtual_ipaddress:
            if vip.family != inst.family:
                diag.error(
                    f"({name}): address family must match VRRP instance [{vip.address.ip}] - ignoring",
                    vip.location,
                )
                continue
            vips.append(vip)
        inst.virtual_ipaddress = vips
        peers = []
        for peer in inst.unicast_peer:
            if m.Family.of(peer.address) != inst.family:
                diag.error(
                    f"({name}) unicast peer {peer.address} is not the instance's address family - ignoring",
                    peer.location,
                )
                continue
            if peer.min_ttl is not None or peer.max_ttl is not None:
                inst.check_unicast_src = True
            peers.append(peer)
        inst.unicast_peer = peers
        for attr in ("unicast_src_ip", "mcast_src_ip"):
            address = getattr(inst, attr)
            if address is not None and m.Family.of(address) != inst.family:
                diag.error(
                    f"({name}) {attr} {address} is not the instance's address family - ignoring",
                    self.at(inst, attr),
                )
                setattr(inst, attr, None)
        # -- version
        if not self.set_(inst, "version"):
            inst.version = gd.vrrp_version
        if inst.family is m.Family.INET6 and inst.version == 2:
            if self.set_(inst, "version"):
                diag.error(
                    f"({name}) cannot use IPv6 with VRRP version 2; setting version 3",
                    self.at(inst, "version"),
                )
            inst.version = 3
        # -- priority and state
        strict = inst.strict_mode if self.set_(inst, "strict_mode") else gd.vrrp_strict
        inst.strict_mode = strict
        if not self.set_(inst, "priority"):
            inst.priority = 255 if inst.state is m.VrrpState.MASTER and inst.state_configured else 100
        if not inst.state_configured:
            inst.state = m.VrrpState.MASTER if inst.priority == 255 else m.VrrpState.BACKUP
        if strict and inst.state is m.VrrpState.MASTER and inst.priority != 255:
            diag.error(f"({name}) State MASTER must match being address owner", self.at(inst, "state"))
            inst.state = m.VrrpState.BACKUP
        # -- authentication
        auth = inst.authentication
        if auth is not None:
            where = self.at(inst, "authentication")
            if inst.version == 3:
                diag.warning(f"({name}) VRRP version 3 does not support authentication. Ignoring.", where)
                inst.authentication = None
            elif strict:
                diag.warning(f"({name}) Strict mode does not support authentication. Ignoring.", where)
                inst.authentication = None
            elif auth.auth_type == "PASS" and self.set_(inst, "auth_pass_missing"):
                diag.error(f"({name}) authentication PASS without auth_pass - ignoring authentication", where)
                inst.authentication = None
            elif auth.auth_type == "AH" and inst.state is m.VrrpState.MASTER:
                diag.warning(
                    f"({name}) Initial state master is incompatible with AH authentication - clearing", where
                )
                inst.state = m.VrrpState.BACKUP
        # -- advert_int (v2: whole seconds; v3: centiseconds up to 40.95)
        adv = inst.advert_int
        where = self.at(inst, "advert_int")
        if inst.version == 2:
            if adv != int(adv) or adv > 255:
                rounded = float(min(255, max(1, round(adv))))
                diag.error(
                    f"({name}) Advert interval {adv:g} must be a whole number of seconds (1..255) for VRRP "
                    f"version 2 - setting {rounded:g}",
                    where,
                )
                adv = rounded
        else:
            centis = round(adv * 100)
            if centis < 1 or centis > 4095 or abs(centis / 100 - adv) > 1e-9:
                fixed = min(4095, max(1, centis)) / 100
                diag.error(
                    f"({name}) Advert interval {adv:g} must be a multiple of 10ms up to 40.95s for VRRP "
                    f"version 3 - setting {fixed:g}",
                    where,
                )
                adv = fixed
        inst.advert_int = adv
        # -- preemption
        if inst.nopreempt and inst.state is m.VrrpState.MASTER and inst.state_configured:
            diag.warning(
                f"({name}) Warning - nopreempt will not work with initial state MASTER - clearing",
                self.at(inst, "nopreempt"),
            )
            inst.nopreempt = False
        elif inst.nopreempt and inst.priority == 255:
            diag.warning(
                f"({name}) nopreempt is incompatible with priority 255 - clearing", self.at(inst, "nopreempt")
            )
            inst.nopreempt = False
        if inst.preempt_delay:
            reason = None
            if inst.nopreempt:
                reason = "nopreempt mode"
            elif strict:
                reason = "strict mode"
            elif inst.state is m.VrrpState.MASTER and inst.state_configured:
                reason = "initial state MASTER"
            if reason is not None:
                diag.error(
                    f"({name}) preempt_delay is incompatible with {reason} - resetting",
                    self.at(inst, "preempt_delay"),
                )
                inst.preempt_delay = 0.0
        # -- defaults from global_defs
        for attr, gattr in (
            ("garp_master_delay", "vrrp_garp_master_delay"),
            ("garp_master_repeat", "vrrp_garp_master_repeat"),
            ("garp_master_refresh", "vrrp_garp_master_refresh"),
            ("garp_master_refresh_repeat", "vrrp_garp_master_refresh_repeat"),
            ("garp_extra_if", "vrrp_garp_extra_if"),
            ("garp_extra_if_all", "vrrp_garp_extra_if_all"),
            ("down_timer_adverts", "vrrp_down_timer_adverts"),
            ("lower_prio_no_advert", "vrrp_lower_prio_no_advert"),
            ("higher_prio_send_advert", "vrrp_higher_prio_send_advert"),
            ("owner_ignore_adverts", "vrrp_owner_ignore_adverts"),
            ("skip_check_adv_addr", "vrrp_skip_check_adv_addr"),
            ("v3_checksum_as_v2", "v3_checksum_as_v2"),
            ("notify_priority_changes", "vrrp_notify_priority_changes"),
        ):
            if attr not in seen:
                setattr(inst, attr, getattr(gd, gattr))
        if inst.garp_master_repeat == 0:
            inst.garp_master_repeat = 1
        if inst.garp_master_refresh_repeat == 0:
            inst.garp_master_refresh_repeat = 1
        if not self.set_(inst, "garp_lower_prio_delay"):
            inst.garp_lower_prio_delay = (
                gd.vrrp_garp_lower_prio_delay
                if self.set_(gd, "vrrp_garp_lower_prio_delay")
                else inst.garp_master_delay
            )
        if not self.set_(inst, "garp_lower_prio_repeat"):
            inst.garp_lower_prio_repeat = (
                gd.vrrp_garp_lower_prio_repeat
                if self.set_(gd, "vrrp_garp_lower_prio_repeat")
                else inst.garp_master_repeat
            )
        if gd.vrrp_check_unicast_src:
            inst.check_unicast_src = True
        if not self.set_(inst, "smtp_alert"):
            default = gd.smtp_alert_vrrp if gd.smtp_alert_vrrp is not None else gd.smtp_alert
            inst.smtp_alert = bool(default)
        # -- strict mode
        if strict:
            if inst.unicast:
                diag.error(
                    f"({name}) Unicast peers are not supported in strict mode", self.at(inst, "unicast_peer")
                )
            if inst.use_vmac is not None and inst.use_vmac.mac:
                diag.error(
                    f"({name}) Strict mode does not support setting the VMAC MAC address - ignoring",
                    self.at(inst, "use_vmac"),
                )
                inst.use_vmac.mac = ""
            if inst.use_vmac is not None and inst.use_vmac.xmit_base:
                diag.error(
                    f"({name}) Strict mode does not support vmac_xmit_base - ignoring",
                    self.at(inst, "vmac_xmit_base"),
                )
                inst.use_vmac.xmit_base = False
            if self.set_(inst, "accept") and inst.accept and inst.priority != 255:
                diag.warning(f"({name}) Strict mode requires no_accept - resetting", self.at(inst, "accept"))
            inst.accept = inst.priority == 255
            inst.garp_lower_prio_repeat = 0
            inst.lower_prio_no_advert = True
            inst.higher_prio_send_advert = False
            inst.down_timer_adverts = 3
            inst.owner_ignore_adverts = True
        elif not self.set_(inst, "accept"):
            inst.accept = True
        if inst.priority == 255:
            inst.accept = True
        if (
            inst.owner_ignore_adverts
            and self.set_(inst, "owner_ignore_adverts")
            and inst.priority != 255
            and not strict
        ):
            diag.warning(
                f"({name}) owner_ignore_adverts is only valid with priority 255 - ignoring",
                self.at(inst, "owner_ignore_adverts"),
            )
            inst.owner_ignore_adverts = False
        # -- VIPs
        if not inst.virtual_ipaddress and not inst.no_virtual_ipaddress:
            diag.warning(f"({name}) No VIP specified; at least one is sensible", inst.location)
        for vip in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded):
            if vip.dev is None:
                vip.dev = inst.interface
        if len(inst.virtual_ipaddress) > 255:
            diag.error(
                f"({name}) more than 255 VIPs - moving the excess to virtual_ipaddress_excluded",
                self.at(inst, "virtual_ipaddress"),
            )
            inst.virtual_ipaddress_excluded[:0] = inst.virtual_ipaddress[255:]
            inst.virtual_ipaddress = inst.virtual_ipaddress[:255]
        # -- unicast / multicast
        if inst.unicast:
            if inst.mcast_dst_ip is not None:
                diag.warning(f"({name}) mcast_dst_ip is ignored with unicast", self.at(inst, "mcast_dst_ip"))
            inst.mcast_dst_ip = None
        elif inst.mcast_dst_ip is None:
            inst.mcast_dst_ip = gd.vrrp_mcast_group4 if inst.family is m.Family.INET else gd.vrrp_mcast_group6
        elif m.Family.of(inst.mcast_dst_ip) != inst.family:
            diag.error(
                f"({name}) mcast_dst_ip {inst.mcast_dst_ip} is not the instance's address family - using the default",
                self.at(inst, "mcast_dst_ip"),
            )
            inst.mcast_dst_ip = gd.vrrp_mcast_group4 if inst.family is m.Family.INET else gd.vrrp_mcast_group6
        if inst.unicast_ttl is not None and not inst.unicast_peer:
            diag.warning(
                f"({name}) unicast_ttl requires unicast peers - ignoring", self.at(inst, "unicast_ttl")
            )
            inst.unicast_ttl = None
        # -- VMAC
        if inst.use_vmac is not None:
            vmac = inst.use_vmac
            if self.set_(inst, "vmac_xmit_base"):
                vmac.xmit_base = True
            if not vmac.ifname:
                vmac.ifname = f"{gd.vmac_prefix}.{inst.virtual_router_id}"
            prefix = "00:00:5e:00:01" if inst.family is m.Family.INET else "00:00:5e:00:02"
            if not vmac.mac:
                vmac.mac = f"{prefix}:{inst.virtual_router_id:02x}"
            elif vmac.mac.count(":") == 4:
                vmac.mac = f"{vmac.mac}:{inst.virtual_router_id:02x}"
            vmac.mac = ":".join(f"{int(part, 16):02x}" for part in vmac.mac.split(":"))
            if inst.unicast and not vmac.xmit_base:
                diag.warning(
                    f"({name}) unicast with use_vmac requires vmac_xmit_base - setting",
                    self.at(inst, "use_vmac"),
                )
                vmac.xmit_base = True
        # -- trackers
        self.resolve_tracking(name, inst)
        if inst.lvs_sync_daemon_interface is not None and gd.lvs_sync_daemon is None:
            gd.lvs_sync_daemon = m.LvsSyncDaemon(
                interface=inst.lvs_sync_daemon_interface,
                vrrp_instance=name,
                location=self.at(inst, "lvs_sync_daemon_interface"),
            )
        return True

    def duplicate_vrids(self) -> None:
        seen: dict[tuple[object, ...], m.VrrpInstance] = {}
        for inst in self.config.vrrp_instances.values():
            key: tuple[object, ...] = (inst.interface, inst.family, inst.virtual_router_id)
            if inst.unicast:
                key = (*key, inst.unicast_src_ip, tuple(p.address for p in inst.unicast_peer))
            other = seen.get(key)
            if other is not None:
                family = "IPv4" if inst.family is m.Family.INET else "IPv6"
                self.diag.error(
                    f"{other.name} and {inst.name} both use VRID {inst.virtual_router_id} with {family} on "
                    f"interface {inst.interface}",
                    self.at(inst, "virtual_router_id"),
                )
            else:
                seen[key] = inst

    def sync_groups(self) -> None:
        owner: dict[str, str] = {}
        for name, group in list(self.config.vrrp_sync_groups.items()):
            members = []
            for member in group.group:
                inst = self.config.vrrp_instances.get(member)
                if inst is None:
                    self.diag.warning(
                        f"Virtual router {member} specified in sync group {name} doesn't exist - ignoring",
                        self.at(group, "group"),
                    )
                    continue
                if member in owner:
                    self.diag.error(
                        f"Virtual router {member} cannot exist in more than one sync group; ignoring {name}",
                        self.at(group, "group"),
                    )
                    continue
                if member in members:
                    continue
                members.append(member)
            group.group = members
            if not members:
                self.diag.warning(f"Sync group {name} has no virtual router(s). removing", group.location)
                del self.config.vrrp_sync_groups[name]
                continue
            if len(members) == 1:
                self.diag.warning(
                    f"Sync group {name} has only 1 virtual router(s) - this probably isn't what you want",
                    group.location,
                )
            for member in members:
                owner[member] = name
                self.config.vrrp_instances[member].sync_group = name
            if not self.set_(group, "smtp_alert"):
                gd = self.glob
                default = gd.smtp_alert_vrrp if gd.smtp_alert_vrrp is not None else gd.smtp_alert
                group.smtp_alert = bool(default)
            self.resolve_tracking(name, group)

    def lvs_sync_daemon(self) -> None:
        sd = self.glob.lvs_sync_daemon
        if sd is None:
            return
        if sd.vrrp_instance is not None:
            inst = self.config.vrrp_instances.get(sd.vrrp_instance)
            if inst is None:
                self.diag.error(
                    f"lvs_sync_daemon vrrp instance {sd.vrrp_instance} not found - ignoring", sd.location
                )
                sd.vrrp_instance = None
            elif sd.syncid is None:
                sd.syncid = inst.virtual_router_id
        if sd.syncid is None:
            sd.syncid = 0

    # ------------------------------------------------------------------ interfaces
    def interfaces(self) -> None:
        exists = self.host.interfaces
        if exists is None:
            return
        missing = False
        dynamic = self.glob.dynamic_interfaces

        def check(name: str | None, message: str, where: Location | None) -> None:
            nonlocal missing
            if name is None or exists(name):
                return
            if dynamic:
                self.diag.info(message, where)
                return
            missing = True
            self.diag.bad_interface(message, where)

        for inst in self.config.vrrp_instances.values():
            check(
                inst.interface,
                f"WARNING - interface {inst.interface} for vrrp_instance {inst.name} doesn't exist",
                self.at(inst, "interface"),
            )
            for ti in inst.track_interface:
                check(ti.name, f"({inst.name}) tracked interface {ti.name} doesn't exist", ti.location)
            for vip in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded):
                if vip.dev != inst.interface:
                    check(
                        vip.dev,
                        f"WARNING - interface {vip.dev} for ip address {vip.address.ip} doesn't exist",
                        vip.location,
                    )
            for route in inst.virtual_routes:
                for dev in (route.dev, *(h.dev for h in route.nexthops)):
                    check(dev, f"WARNING - interface {dev} for VROUTE nexthop doesn't exist", route.location)
        for group in self.config.vrrp_sync_groups.values():
            for ti in group.track_interface:
                check(ti.name, f"({group.name}) tracked interface {ti.name} doesn't exist", ti.location)
        for address in self.config.static_ipaddress:
            check(
                address.dev,
                f"WARNING - interface {address.dev} for ip address {address.address.ip} doesn't exist",
                address.location,
            )
        for route in self.config.static_routes:
            for dev in (route.dev, *(h.dev for h in route.nexthops)):
                check(
                    dev, f"WARNING - interface {dev} for static route nexthop doesn't exist", route.location
                )
        if missing:
            self.diag.error("Non-existent interface specified in configuration")

    # ------------------------------------------------------------------ LVS
    def virtual_server_groups(self) -> None:
        for name, group in list(self.config.virtual_server_groups.items()):
            if not group.entries:
                self.diag.error(f"virtual server group {name} has no entries - removing", group.location)
                del self.config.virtual_server_groups[name]
                continue
            families = {m.Family.of(e.address) for e in group.entries if e.address is not None}
            families |= {e.family for e in group.entries if e.family is not None}
            if len(families) > 1:
                self.diag.error(
                    f"virtual server group {name} cannot have IPv4, IPv6 and fwmark without family - removing",
                    self.ctx.end_of(group) or group.location,
                )
                del self.config.virtual_server_groups[name]

    def virtual_server(self, vs: m.VirtualServer) -> bool:
        diag = self.diag
        gd = self.glob
        # -- what it serves
        if vs.group is not None:
            group = self.config.virtual_server_groups.get(vs.group)
            if group is None:
                diag.error(
                    f"Virtual server group {vs.group} not found - removing virtual server", vs.location
                )
                return False
            fams = {m.Family.of(e.address) for e in group.entries if e.address is not None}
            fams |= {e.family for e in group.entries if e.family is not None}
            vs.family = fams.pop() if fams else (vs.ip_family or m.Family.INET)
            ports = {e.port for e in group.entries if e.address is not None}
            vs.port = ports.pop() if len(ports) == 1 else 0
        elif vs.fwmark is not None:
            if vs.ip_family is not None:
                vs.family = vs.ip_family
            else:
                fams = {rs.family for rs in vs.real_servers}
                vs.family = fams.pop() if len(fams) == 1 else m.Family.INET
        if vs.fwmark is not None:
            if vs.protocol_configured:
                diag.warning(
                    f"Warning: Virtual server {vs.describe()}: protocol specified for fwmark - protocol will be ignored",
                    self.at(vs, "protocol"),
                )
        elif not vs.protocol_configured:
            vs.protocol = "none"  # as Keepalived names it in this message
            diag.warning(f"Virtual server {vs.describe()}: no protocol set - defaulting to UDP", vs.location)
            vs.protocol = "UDP"
        # -- scheduler and forwarding
        if not self.set_(vs, "lb_algo"):
            diag.warning(
                f"Virtual server {vs.describe()}: no scheduler set, setting default 'wlc'", vs.location
            )
        if not self.set_(vs, "forwarding"):
            diag.warning(
                f"Virtual server {vs.describe()}: no forwarding method set, setting default NAT", vs.location
            )
        # -- persistence
        if vs.address is not None and vs.port == 0 and vs.persistence_timeout == 0:
            diag.warning(
                f"Virtual server {vs.describe()}: zero port only valid for persistent services - setting",
                vs.location,
            )
            vs.persistence_timeout = 360
        if vs.persistence_granularity is not None and vs.persistence_timeout == 0:
            vs.persistence_timeout = 360
        if vs.ops and vs.protocol != "UDP" and vs.fwmark is None:
            diag.error(
                f"Virtual server {vs.describe()}: one packet scheduling requires UDP - resetting",
                self.at(vs, "ops"),
            )
            vs.ops = False
        if vs.ha_suspend and vs.fwmark is not None:
            diag.warning(
                f"Virtual server {vs.describe()}: ha_suspend is not valid with fwmark - ignoring",
                self.at(vs, "ha_suspend"),
            )
            vs.ha_suspend = False
        if not self.set_(vs, "smtp_alert"):
            default = gd.smtp_alert_checker if gd.smtp_alert_checker is not None else gd.smtp_alert
            vs.smtp_alert = bool(default)
        # -- real servers
        if not vs.real_servers and vs.sorry_server is None:
            diag.warning(f"Virtual server {vs.describe()} has no real servers - ignoring", vs.location)
            return False
        seen: set[tuple[object, ...]] = set()
        kept = []
        for rs in vs.real_servers:
            self.real_server(vs, rs)
            if rs.key() in seen:
                diag.error(
                    f"VS {vs.describe()}: real server [{rs.address}]:{vs.protocol.lower()}:{rs.port} is duplicated - "
                    "removing second rs",
                    rs.location,
                )
                continue
            seen.add(rs.key())
            kept.append(rs)
        vs.real_servers = kept
        if vs.sorry_server is not None:
            sorry = vs.sorry_server
            sorry.forwarding = vs.sorry_server_lvs_method or vs.forwarding
            if not self.set_(sorry, "port"):
                sorry.port = vs.port
            sorry.weight = vs.weight
            sorry.inhibit_on_failure = vs.sorry_server_inhibit
        # -- quorum
        total = sum(rs.weight for rs in vs.real_servers)
        if vs.quorum > total and vs.real_servers:
            diag.warning(
                f"Warning - quorum {vs.quorum} for {vs.describe()} exceeds the total weight {total} of its real "
                f"servers - setting quorum to {max(total, 1)}",
                self.at(vs, "quorum"),
            )
            vs.quorum = max(total, 1)
        if vs.hysteresis >= vs.quorum and self.set_(vs, "hysteresis"):
            diag.warning(
                f"Warning - hysteresis {vs.hysteresis} for {vs.describe()} >= quorum {vs.quorum} - setting to "
                f"{vs.quorum - 1}",
                self.at(vs, "hysteresis"),
            )
            vs.hysteresis = vs.quorum - 1
        return True

    def real_server(self, vs: m.VirtualServer, rs: m.RealServer) -> None:
        gd = self.glob
        seen = self.ctx.seen(rs)
        if "forwarding" not in seen:
            rs.forwarding = m.Forwarding(
                method=vs.forwarding.method,
                tunnel_type=vs.forwarding.tunnel_type,
                tunnel_port=vs.forwarding.tunnel_port,
                tunnel_csum=vs.forwarding.tunnel_csum,
            )
        if rs.forwarding.method == "TUN" and rs.forwarding.tunnel_type is None:
            rs.forwarding.tunnel_type = "ipip"
        if "port" not in seen:
            rs.port = 0 if vs.fwmark is not None else vs.port
        elif rs.forwarding.method != "NAT" and vs.fwmark is None and vs.group is None and rs.port != vs.port:
            self.diag.warning(
                f"WARNING - virtual server {vs.describe()} and real server [{rs.address}]:{vs.protocol.lower()}:"
                f"{rs.port} ports don't match - resetting",
                rs.location,
            )
            rs.port = vs.port
        if "weight" not in seen:
            rs.weight = vs.weight
        for attr in ("inhibit_on_failure", "alpha"):
            if attr not in seen:
                setattr(rs, attr, getattr(vs, attr))
        if "smtp_alert" not in seen:
            default = gd.smtp_alert_checker if gd.smtp_alert_checker is not None else gd.smtp_alert
            rs.smtp_alert = True if default is None else default
        if "virtualhost" not in seen:
            rs.virtualhost = vs.virtualhost
        # checker timing defaults: RS value, else VS value
        for attr in ("delay_loop", "connect_timeout", "retry", "delay_before_retry", "warmup"):
            if attr not in seen:
                setattr(rs, attr, getattr(vs, attr))
        kept = []
        for checker in rs.checkers:
            if self.checker(vs, rs, checker):
                kept.append(checker)
        rs.checkers = kept

    def checker(self, vs: m.VirtualServer, rs: m.RealServer, chk: m.Checker) -> bool:
        diag = self.diag
        seen = self.ctx.seen(chk)
        if "delay_loop" not in seen:
            chk.delay_loop = rs.delay_loop
        if "connect_timeout" not in seen:
            chk.connect_timeout = rs.connect_timeout
        if "retry" not in seen:
            if rs.retry is not None:
                chk.retry = rs.retry
            else:
                chk.retry = {"DNS_CHECK": 3, "MISC_CHECK": 0}.get(chk.TYPE, 1)
        if "delay_before_retry" not in seen:
            if rs.delay_before_retry is not None:
                chk.delay_before_retry = rs.delay_before_retry
            elif chk.TYPE == "DNS_CHECK":
                chk.delay_before_retry = chk.delay_loop
            elif isinstance(chk, m.HttpGetCheck):
                chk.delay_before_retry = 3.0
            else:
                chk.delay_before_retry = 1.0
        if "warmup" not in seen:
            chk.warmup = rs.warmup if rs.warmup is not None else chk.delay_loop
        if "alpha" not in seen:
            chk.alpha = rs.alpha
        if "log_all_failures" not in seen:
            chk.log_all_failures = self.glob.checker_log_all_failures
        if chk.connect_ip is None:
            chk.connect_ip = rs.address
        if "connect_port" not in seen:
            chk.connect_port = rs.port
        where = chk.location
        if isinstance(chk, m.HttpGetCheck):
            if not chk.urls:
                diag.error("HTTP/SSL_GET checker has no urls specified - ignoring", where)
                return False
            host = chk.virtualhost if self.set_(chk, "virtualhost") else rs.virtualhost
            for url in chk.urls:
                if url.virtualhost is None:
                    url.virtualhost = host
                if url.regex is None and (url.regex_no_match or url.regex_options or url.regex_stack):
                    diag.error("regex parameters specified without regex", url.location)
            if chk.virtualhost is None:
                chk.virtualhost = host
            if isinstance(chk, m.SslGetCheck) and chk.sni_name is None and chk.enable_sni:
                chk.sni_name = host
        elif isinstance(chk, m.MiscCheck):
            if chk.misc_path is None:
                diag.error(
                    "No script path has been specified for MISC_CHECKER - skipping",
                    self.ctx.end_of(chk) or where,
                )
                return False
            user = self.ctx.get(chk, "user")
            if user is not None:
                chk.misc_path.user, chk.misc_path.group, chk.misc_path.supplementary_groups = user
            if not self.set_(chk, "misc_timeout"):
                chk.misc_timeout = chk.delay_loop
        elif isinstance(chk, m.FileCheck):
            tf = self.config.track_files.get(chk.track_file)
            if not chk.track_file or tf is None:
                diag.error(f"FILE_CHECK track_file '{chk.track_file}' not found - ignoring checker", where)
                return False
            if not self.set_(chk, "weight"):
                chk.weight, chk.weight_reverse = tf.weight, tf.weight_reverse
        elif isinstance(chk, m.BfdCheck) and not chk.name:
            diag.error("BFD_CHECK has no bfd instance name - ignoring checker", where)
            return False
        if chk.connect_port == 0 and isinstance(
            chk, m.TcpCheck | m.HttpGetCheck | m.SmtpCheck | m.DnsCheck | m.UdpCheck
        ):
            default_port = {"DNS_CHECK": 53, "SMTP_CHECK": 25}.get(chk.TYPE)
            if default_port is None:
                diag.error(
                    f"{chk.TYPE} for real server [{rs.address}] of {vs.describe()} has no port to connect to "
                    "(set connect_port) - ignoring checker",
                    where,
                )
                return False
            chk.connect_port = default_port
        if (
            chk.connect_ip is not None
            and chk.bindto is not None
            and chk.connect_ip.version != chk.bindto.version
        ):
            diag.error(
                f"{chk.TYPE} bindto {chk.bindto} and connect_ip {chk.connect_ip} differ in address family",
                where,
            )
            chk.bindto = None
        return True


# --------------------------------------------------------------------------- script security
_SHELL_CHARS = frozenset("<>|&;$`*?()[]{}~!\"'\\")


class ScriptChecker:
    """Keepalived's script checks at start-up (and in ``-t``).

    A script whose program is found and that would run as root while
    ``enable_script_security`` is off makes the whole configuration a security violation
    (config-test exit 6). With ``enable_script_security``, scripts whose path could be
    changed by a non-root user are disabled. A ``vrrp_script`` whose program cannot be
    found is disabled (the instance tracking it ignores it).
    """

    def __init__(self, completer: Completer) -> None:
        self.c = completer
        self.diag = completer.diag
        self.config = completer.config
        self.gd = completer.glob
        self.host = completer.host

    def scripts(self) -> Iterable[tuple[str, m.Script]]:
        gd = self.gd
        for name, script in (("startup_script", gd.startup_script), ("shutdown_script", gd.shutdown_script)):
            if script is not None:
                yield name, script
        for fifo in (gd.notify_fifo, gd.vrrp_notify_fifo, gd.lvs_notify_fifo):
            if fifo is not None and fifo.script is not None:
                yield "notify_fifo_script", fifo.script
        for inst in self.config.vrrp_instances.values():
            yield from self._notifies(inst)
        for group in self.config.vrrp_sync_groups.values():
            yield from self._notifies(group)
        for vs in self.config.virtual_servers:
            for script in (vs.quorum_up, vs.quorum_down):
                if script is not None:
                    yield "quorum script", script
            for rs in vs.real_servers:
                for script in (rs.notify_up, rs.notify_down):
                    if script is not None:
                        yield "notify script", script
                for chk in rs.checkers:
                    if isinstance(chk, m.MiscCheck) and chk.misc_path is not None:
                        yield "MISC_CHECK", chk.misc_path

    @staticmethod
    def _notifies(obj: m.VrrpInstance | m.SyncGroup) -> Iterable[tuple[str, m.Script]]:
        for attr in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"):
            script = getattr(obj, attr)
            if script is not None:
                yield attr, script
        if isinstance(obj, m.VrrpInstance):
            for script in (obj.notify_deleted_script, obj.notify_master_rx_lower_pri):
                if script is not None:
                    yield "notify", script

    def run(self) -> None:
        default_user = self.gd.script_user
        if default_user is None:
            default_user = "keepalived_script" if _user_exists("keepalived_script") else "root"
        security = self.gd.enable_script_security
        root_scripts = 0
        insecure = 0
        # vrrp_scripts first: a missing one is disabled
        for name, vs in list(self.config.vrrp_scripts.items()):
            program = self.find(vs.script)
            if program == "":
                continue  # run through the shell: not checked
            if program is None:
                self.diag.warning(f"Disabling track script {name} since not found/accessible", vs.location)
                del self.config.vrrp_scripts[name]
                self._untrack(name)
                continue
            user = vs.script.user or default_user
            if user == "root" or _uid(user) == 0:
                if security and self.insecure(program):
                    self.diag.warning(f"Disabling track script {name} since it is insecure", vs.location)
                    del self.config.vrrp_scripts[name]
                    self._untrack(name)
                    continue
                root_scripts += 1
                insecure += self.insecure(program)
        for _what, script in self.scripts():
            program = self.find(script)
            if not program:
                continue
            user = script.user or default_user
            if user == "root" or _uid(user) == 0:
                root_scripts += 1
                insecure += self.insecure(program)
        if root_scripts and not security:
            message = "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
            if insecure:
                message += " There are insecure scripts."
            self.diag.security(message)

    def _untrack(self, name: str) -> None:
        for inst in self.config.vrrp_instances.values():
            inst.track_script = [ref for ref in inst.track_script if ref.name != name]
        for group in self.config.vrrp_sync_groups.values():
            group.track_script = [ref for ref in group.track_script if ref.name != name]

    def find(self, script: m.Script) -> str | None:
        """The program's path; None if not found; "" if the shell would run it."""
        program = script.argv[0]
        if any(c in _SHELL_CHARS for c in program):
            return ""
        if "/" in program:
            return program if os.access(program, os.X_OK) and os.path.isfile(program) else None
        for directory in self.host.path.split(":"):
            candidate = os.path.join(directory or ".", program)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    @staticmethod
    def insecure(path: str) -> bool:
        """Whether a non-root user could change or replace ``path``."""
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
            if st.st_uid != 0 or st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
                return True
            directory = os.path.dirname(real)
            while True:
                st = os.stat(directory)
                if st.st_uid != 0 or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
                    return True
                if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
                    return True
                parent = os.path.dirname(directory)
                if parent == directory:
                    return False
                directory = parent
        except OSError:
            return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None
