"""The checker child's engine: every virtual server, its checkers and IPVS, on one loop.

::

    mgr = CheckerManager(loop, config, sink)   # config: fastka.check.spec.CheckConfig
    mgr.start()                 # services + live real servers into IPVS, checkers armed
    mgr.reload(new_config)      # compare and migrate (behaviour.md §R)
    mgr.shutdown()              # TERM: remove what we added (unless -I), omega notifiers

The daemon wires signals to these calls; ``python -m fastka.check.run`` is a standalone
front end.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastka._linux import NETLINK_ROUTE
from fastka.check.base import LoopLike, Target
from fastka.check.file import FileChecker
from fastka.check.fsm import Checker, CheckerBase, RealServer, SteadyChecker, VirtualServer
from fastka.check.http import HttpProbe, client_ssl_context
from fastka.check.misc import MiscProbe
from fastka.check.notify import LoopNotifier, Notifier, resolve_user, script_is_secure
from fastka.check.ping import PingProbe
from fastka.check.sink import IpvsSink
from fastka.check.smtp import SmtpProbe
from fastka.check.spec import (
    CheckConfig,
    CheckerSpec,
    DnsParams,
    FileParams,
    HttpParams,
    MiscParams,
    PingParams,
    SmtpParams,
    TcpParams,
    UdpParams,
    VirtualServerSpec,
    family_of,
)
from fastka.check.steady import http_urls, new_check
from fastka.check.udp import UdpProbe
from fastka.log import get_logger

if TYPE_CHECKING:
    import ssl

log = get_logger("check")

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


def address_is_local(address: str) -> bool:
    """True if ``address`` is configured on a local interface (bind succeeds only then)."""
    fam = family_of(address)
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


class CheckerManager:
    def __init__(
        self,
        loop: LoopLike,
        config: CheckConfig,
        sink: IpvsSink,
        *,
        notifier: Notifier | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.loop = loop
        self.config = config
        self.sink = sink
        self.rng = rng or random.Random()
        self._own_notifier = notifier is None
        self.notifier: Notifier = notifier or self._make_notifier(config)
        self._ssl: ssl.SSLContext | None = None
        self.vss: dict[tuple[object, ...], VirtualServer] = {}
        self._nl: socket.socket | None = None
        self._suspended: dict[tuple[object, ...], bool] = {}
        # Called when something worth reporting changed (the daemon's status_changed).
        self.on_change: Callable[[], None] | None = None

    # -- construction
    def _make_notifier(self, config: CheckConfig) -> Notifier:
        g = config.globals
        return LoopNotifier(
            self.loop,
            g.lvs_notify_fifos,
            script_user=g.script_user,
            script_group=g.script_group,
            script_security=g.enable_script_security,
            fifo_script=g.lvs_notify_fifo_script,
            smtp=g.smtp,
        )

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            g = self.config.globals
            self._ssl = client_ssl_context(g.ssl_ca, g.ssl_certificate, g.ssl_key, g.ssl_password)
        return self._ssl

    def make_checker(self, cs: CheckerSpec, rs: RealServer) -> CheckerBase:
        """The checker factory handed to each virtual server."""
        p = cs.params
        loop = self.loop
        g = self.config.globals
        rs_spec = rs.spec
        if isinstance(p, FileParams):
            return FileChecker(cs, rs, loop)
        probe: Any
        n_steps = 1
        recheck = False
        if isinstance(p, MiscParams):
            timeout = p.timeout if p.timeout is not None else cs.delay_loop
            creds = self._script_creds(p)
            probe = MiscProbe(loop, p, timeout, creds)
            checker = Checker(cs, probe, rs, loop, target=p.script.text, rng=self.rng)
            if creds is False:
                checker.set_enabled(False)
            return checker
        if isinstance(p, (DnsParams, UdpParams, PingParams)):
            port = rs_spec.port or (53 if isinstance(p, DnsParams) else 0)
            target = Target.of(cs, rs_spec.address, port, "udp" if not isinstance(p, PingParams) else "icmp")
        else:
            target = Target.of(cs, rs_spec.address, rs_spec.port, "tcp")
        t = cs.connect_timeout
        urls = http_urls(target, p) if isinstance(p, HttpParams) else None
        if isinstance(p, TcpParams) or urls is not None:
            # TCP_CHECK and plain HTTP_GET: compiled attempts and steady state (check/steady.py)
            return SteadyChecker(
                cs,
                new_check(loop, target, t, urls or ()),
                rs,
                loop,
                target=target.describe(),
                n_steps=len(urls) if urls else 1,
                recheck_after_recovery=urls is not None,
                rng=self.rng,
                log_all_failures=g.checker_log_all_failures,
            )
        if isinstance(p, HttpParams):
            probe = HttpProbe(loop, target, t, p, self.ssl_context() if p.ssl else None)
            n_steps = len(p.urls)
            recheck = True
        elif isinstance(p, SmtpParams):
            probe = SmtpProbe(loop, target, t, p.helo_name)
        elif isinstance(p, DnsParams):
            # dnspython costs ~60 ms and 3 MB to import: only for DNS_CHECK (the parent
            # imports it before forking when the configuration has one, see subsystem.py).
            from fastka.check.dns import DnsProbe

            probe = DnsProbe(loop, target, t, p)
        elif isinstance(p, UdpParams):
            probe = UdpProbe(loop, target, t, p)
        else:
            probe = PingProbe(loop, target, t)
        return Checker(
            cs,
            probe,
            rs,
            loop,
            target=target.describe(),
            n_steps=n_steps,
            recheck_after_recovery=recheck,
            rng=self.rng,
            log_all_failures=g.checker_log_all_failures,
        )

    def _script_creds(self, p: MiscParams) -> Any:
        """(uid, gid), None for ourselves, or False when script security refuses it."""
        notifier = self.notifier
        try:
            if isinstance(notifier, LoopNotifier):
                creds = notifier.credentials(p.script)
            else:
                creds = resolve_user(p.script.user, p.script.group)
        except LookupError as exc:
            log.error("MISC_CHECK %s disabled: %s", p.script.text, exc)
            return False
        g = self.config.globals
        if g.enable_script_security:
            uid = creds[0] if creds else os.getuid()
            if not script_is_secure(p.script.argv[0], uid):
                log.warning("MISC_CHECK %s is insecure: disabled", p.script.text)
                return False
        return creds

    def _new_vs(self, spec: VirtualServerSpec) -> VirtualServer:
        vs = VirtualServer(
            spec,
            self.sink,
            self.notifier,
            self.make_checker,
            rs_init_notifies=self.config.globals.rs_init_notifies,
        )
        vs.on_change = self._changed
        return vs

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- life cycle
    def start(self) -> None:
        if self.config.globals.lvs_flush:
            self.sink.flush()
        for spec in self.config.virtual_servers:
            if spec.key in self.vss:
                log.warning("Duplicate virtual server %s ignored", spec.describe())
                continue
            vs = self._new_vs(spec)
            self.vss[spec.key] = vs
            vs.start()
        self._setup_suspend()
        log.info("Checker engine started: %d virtual servers", len(self.vss))

    def reload(self, config: CheckConfig) -> None:
        """Apply a new configuration: compare and migrate (behaviour.md §R)."""
        old_vss = self.vss
        old_config = self.config
        self.config = config
        og, ng = old_config.globals, config.globals
        if (ng.lvs_notify_fifos != og.lvs_notify_fifos or ng.smtp != og.smtp) and self._own_notifier:
            old_notifier = self.notifier
            self.notifier = self._make_notifier(config)
            if isinstance(old_notifier, LoopNotifier):
                old_notifier.close()
        if config.globals.ssl_ca != old_config.globals.ssl_ca or (
            config.globals.ssl_certificate != old_config.globals.ssl_certificate
        ):
            self._ssl = None
        self.vss = {}
        new_keys = {s.key for s in config.virtual_servers}
        for key, vs in old_vss.items():
            if key not in new_keys:
                log.info("Removing virtual server %s", vs.describe())
                vs.shutdown(release=True, notify=True)
        for spec in config.virtual_servers:
            if spec.key in self.vss:
                continue
            new = self._new_vs(spec)
            self.vss[spec.key] = new
            old = old_vss.get(spec.key)
            if old is None:
                new.start()
            else:
                new.migrate(old)
        self._setup_suspend()

    def shutdown(self) -> None:
        release = not self.config.globals.dont_release_ipvs
        flush = self.config.globals.lvs_flush_on_stop
        for vs in self.vss.values():
            # lvs_flush_on_stop VS: delete our services without per-dest deletes.
            vs.shutdown(release=release and flush is None, notify=vs.spec.omega)
            if flush == "vs":
                vs.delete_services()
        if flush == "all":
            self.sink.flush()
        self.vss = {}
        self._close_suspend()
        if self._own_notifier and isinstance(self.notifier, LoopNotifier):
            self.notifier.close()

    # -- ha_suspend: follow local addresses through RTNL address events
    def _setup_suspend(self) -> None:
        wanted = {k: vs for k, vs in self.vss.items() if vs.spec.ha_suspend}
        if not wanted:
            self._close_suspend()
            return
        if self._nl is None:
            try:
                nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_ROUTE)
                nl.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            except OSError as exc:
                log.error("ha_suspend: cannot follow address changes: %s", exc)
            else:
                self._nl = nl
                self.loop.add_reader(nl.fileno(), self._on_address_event)
        self._refresh_suspend()

    def _close_suspend(self) -> None:
        if self._nl is not None:
            self.loop.remove_reader(self._nl.fileno())
            self._nl.close()
            self._nl = None

    def _on_address_event(self) -> None:
        assert self._nl is not None
        while True:
            try:
                self._nl.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                break
        self._refresh_suspend()

    def _refresh_suspend(self) -> None:
        for key, vs in self.vss.items():
            if not vs.spec.ha_suspend:
                continue
            addrs = vs.spec.ha_suspend_addresses or tuple(s.address for s in vs.services if s.address)
            present = all(address_is_local(a) for a in addrs) if addrs else True
            if self._suspended.get(key) != (not present):
                self._suspended[key] = not present
                log.info(
                    "%s healthchecker for VS %s", "Activating" if present else "Suspending", vs.describe()
                )
                vs.set_checkers_enabled(present)

    # -- introspection (status dumps)
    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for vs in self.vss.values():
            out.append(
                {
                    "vs": vs.describe(),
                    "quorum_up": vs.quorum_up,
                    "sorry_server_active": vs.sorry_active,
                    "real_servers": [
                        {
                            "rs": rs.describe(),
                            "alive": rs.alive,
                            "weight": rs.weight,
                            "checkers": [{"type": c.spec.kind, "up": c.is_up} for c in rs.checkers],
                        }
                        for rs in vs.rss.values()
                    ],
                }
            )
        return out
