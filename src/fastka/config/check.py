"""``fastka -t[LOGFILE]`` (config test) and ``-d``/``--dump-conf[=json]`` (config dump).

``run_config_test`` compiles the file named by ``-f`` as Keepalived's ``--config-test``
does -- including the checks that look at this machine (interfaces in the current
network namespace, script files) -- prints every diagnostic in Keepalived's format to
stderr (or to LOGFILE), and returns the config-test exit code (cli.md §6): 0 clean,
4 missing files/bad interfaces/fatal only, 5 any other problem, 6 script security.

``dump_config`` prints the compiled configuration (text, or JSON with
``--dump-conf=json``); the daemon calls it at start-up when ``-d`` is given, as
Keepalived dumps its configuration to the log.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from fastka.cli import Options
from fastka.config import model as m
from fastka.config.compile import Host, interface_exists, load
from fastka.config.diagnostics import Diagnostic, exit_code
from fastka.config.jsonio import dumps


def load_from_options(opts: Options, *, check_host: bool = False) -> tuple[m.Config, list[Diagnostic]]:
    """Compile ``-f`` with the command line's ``-i`` and ``-e``.

    ``check_host`` adds what ``-t`` checks on this machine: interfaces in the current
    network namespace and script files (the daemon leaves interfaces to appear later).
    With ``--config-fd=FD`` the configuration is the consolidated copy in that descriptor
    (:mod:`fastka.configcopy`) instead of ``-f``'s files.
    """
    host = Host.current(interfaces=interface_exists if check_host else None, check_scripts=True)
    if opts.config_fd is not None:  # --config-fd: the daemon's consolidated copy
        from fastka.configcopy import load_fd

        config, diag = load_fd(opts.config_fd, host=host)
        return config, list(diag)
    return load(
        opts.config_file,
        config_id=opts.effective_config_id,
        host=host,
        all_config=opts.all_config,
    )


def format_diagnostics(diagnostics: Iterable[Diagnostic], config: m.Config) -> list[str]:
    """Keepalived's lines: ``(FILE: Line N) text`` once more than one file is involved."""
    show_file = len(config.files) > 1
    return [d.format(show_file=show_file) for d in diagnostics]


def run_config_test(opts: Options) -> int:
    """``fastka -t``: check the configuration, report, return the config-test exit code."""
    config, diagnostics = load_from_options(opts, check_host=True)
    lines = format_diagnostics(diagnostics, config)
    if opts.config_test:
        try:
            with open(opts.config_test, "a", encoding="utf-8") as log:
                for line in lines:
                    log.write(line + "\n")
        except OSError as exc:
            print(f"Unable to open config test log file {opts.config_test}: {exc.strerror}", file=sys.stderr)
            for line in lines:
                print(line, file=sys.stderr)
    else:
        for line in lines:
            print(line, file=sys.stderr)
    return exit_code(diagnostics)


def dump_config(opts: Options, config: m.Config | None = None, stream: TextIO | None = None) -> int:
    """Print the compiled configuration: text, or JSON for ``--dump-conf=json``.

    The daemon passes the config it has loaded; called alone it loads ``-f`` itself.
    Returns 0, or the config-test exit code if the file could not be compiled cleanly.
    """
    out = stream if stream is not None else sys.stdout
    status = 0
    if config is None:
        config, diagnostics = load_from_options(opts)
        status = exit_code(diagnostics)
    if (opts.dump_conf or "").lower() == "json":
        out.write(dumps(config) + "\n")
    else:
        out.write(dump_text(config))
    return status


# --------------------------------------------------------------------------- text dump
def _scalar(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bytes):
        return repr(value)[2:-1] or '""'
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value.with_prefixlen
    if isinstance(value, m.Script):
        user = f" (user {value.user}{':' + value.group if value.group else ''})" if value.user else ""
        return " ".join(_quote(a) for a in value.argv) + user
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _quote(word: str) -> str:
    return f"'{word}'" if not word or any(c.isspace() for c in word) else word


def _lines(obj: object, indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    if isinstance(obj, m.Checker):
        out.append(f"{pad}type = {obj.TYPE}")
    assert dataclasses.is_dataclass(obj)
    for f in dataclasses.fields(obj):
        if f.name == "location":
            continue
        value = getattr(obj, f.name)
        out.extend(_field(f.name, value, indent))
    return out


def _field(name: str, value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, m.Script) or not (dataclasses.is_dataclass(value) or isinstance(value, list | dict)):
        return [f"{pad}{name} = {_scalar(value)}"]
    if isinstance(value, dict):
        if not value:
            return []
        out = []
        for key, item in value.items():
            out.append(f"{pad}{name} {key}")
            out.extend(
                _lines(item, indent + 1) if dataclasses.is_dataclass(item) else [f"{pad}  {_scalar(item)}"]
            )
        return out
    if isinstance(value, list):
        if not value:
            return [f"{pad}{name} = (none)"]
        if not any(dataclasses.is_dataclass(v) for v in value):
            return [f"{pad}{name} = {' '.join(_scalar(v) for v in value)}"]
        out = [f"{pad}{name}"]
        for item in value:
            if isinstance(item, m.Script):
                out.append(f"{pad}  - {_scalar(item)}")
            elif isinstance(item, m.RealServer | m.Checker | m.Url):
                out.append(f"{pad}  - {_compact(item)}")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}  - {_compact(item)}")
        return out
    return [f"{pad}{name}", *_lines(value, indent + 1)]


def _compact(obj: Any) -> str:
    """One line: the fields that differ from the class defaults."""
    if isinstance(obj, m.RealServer):
        return f"[{obj.address}]:{obj.port}"
    if isinstance(obj, m.Checker):
        return obj.TYPE
    if isinstance(obj, m.Url):
        return obj.path
    parts = []
    for f in dataclasses.fields(obj):
        if f.name == "location":
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, m.Script):
            parts.append(f"{f.name}=({_compact(value)})")
        else:
            parts.append(f"{f.name}={_scalar(value)}")
    return " ".join(parts) or "-"


def dump_text(config: m.Config) -> str:
    """A readable dump of every object and effective value (not a stable format)."""
    out: list[str] = ["------< Global definitions >------", *_lines(config.global_defs, 1)]
    sections: list[tuple[str, list[Any]]] = [
        ("VRRP scripts", list(config.vrrp_scripts.values())),
        ("Track files", list(config.track_files.values())),
        ("Track processes", list(config.track_processes.values())),
        ("VRRP sync groups", list(config.vrrp_sync_groups.values())),
        ("GARP groups", config.garp_groups),
        ("VRRP instances", list(config.vrrp_instances.values())),
        ("Static addresses", config.static_ipaddress),
        ("Static routes", config.static_routes),
        ("Static rules", config.static_rules),
        ("Track groups", list(config.track_groups.values())),
        ("Linkbeat interfaces", config.linkbeat_interfaces),
        ("Interface up/down delays", config.interface_up_down_delays),
        ("BFD instances", list(config.bfd_instances.values())),
        ("SSL", [config.ssl] if config.ssl else []),
        ("Virtual server groups", list(config.virtual_server_groups.values())),
        ("Virtual servers", config.virtual_servers),
    ]
    for title, items in sections:
        if not items:
            continue
        out.append(f"------< {title} >------")
        for item in items:
            label = getattr(item, "name", None)
            if isinstance(item, m.VirtualServer):
                label = item.describe()
            elif isinstance(item, m.IpAddress):
                label = item.address.with_prefixlen
            elif isinstance(item, m.Route):
                label = str(item.dst)
            out.append(f" {label}" if label else " -")
            out.extend(_lines(item, 2))
    return "\n".join(out) + "\n"
