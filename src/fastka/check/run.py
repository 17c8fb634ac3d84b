"""Run the checker engine alone, in the foreground: ``python -m fastka.check.run -f CONF``.

A stand-alone front end for tests and for trying a configuration; the daemon's checker
child (``fastka -C``) uses the same :class:`~fastka.check.manager.CheckerManager`.

Options: ``-f FILE`` configuration, ``-D`` debug logging, ``-I`` leave IPVS as it is on
exit (as Keepalived's ``--dont-release-ipvs``), ``--dry-run`` keep the IPVS table in
memory and log the commands instead of programming the kernel, ``--pid-file FILE``.
Signals: TERM/INT stop (removing what was added to IPVS), HUP reloads the configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from fastka.check.from_config import check_config
from fastka.check.manager import CheckerManager
from fastka.check.sink import IpvsSink, KernelSink, LoggingSink
from fastka.check.spec import CheckConfig
from fastka.log import get_logger
from fastka.log import setup as log_setup

log = get_logger("check")


def load_check_config(path: str, *, dont_release_ipvs: bool = False) -> CheckConfig:
    """Compile ``path`` with the configuration compiler and map it to checker specs."""
    from fastka import config as config_pkg

    loader: Any = getattr(config_pkg, "load", None)
    if loader is None:
        raise RuntimeError("the configuration compiler (fastka.config.load) is not available")
    loaded = loader(path)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    return check_config(model, dont_release_ipvs=dont_release_ipvs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastka.check.run", description=__doc__.splitlines()[0])
    ap.add_argument("-f", "--use-file", dest="config", default="/etc/keepalived/keepalived.conf")
    ap.add_argument("-D", "--log-detail", action="store_true")
    ap.add_argument("-I", "--dont-release-ipvs", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--pid-file")
    args = ap.parse_args(argv)
    log_setup(
        console=True, syslog=False, detail=1 if args.log_detail else 0, ident="Keepalived_healthcheckers"
    )
    try:
        config = load_check_config(args.config, dont_release_ipvs=args.dont_release_ipvs)
    except Exception as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    from fastka.loop import Loop

    loop = Loop()
    sink: IpvsSink = LoggingSink(log) if args.dry_run else KernelSink()
    mgr = CheckerManager(loop, config, sink)

    def stop(signum: int) -> None:
        log.info("Stopping")
        mgr.shutdown()
        loop.stop()

    def reload(signum: int) -> None:
        log.info("Reloading")
        try:
            new = load_check_config(args.config, dont_release_ipvs=args.dont_release_ipvs)
        except Exception as exc:
            log.error("Reload failed, keeping the running configuration: %s", exc)
            return
        mgr.reload(new)

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    mgr.start()
    try:
        loop.run()
    finally:
        loop.close()
        if args.pid_file:
            with contextlib.suppress(OSError):
                os.unlink(args.pid_file)
    logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
