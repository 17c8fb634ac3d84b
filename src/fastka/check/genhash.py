"""``fastka -T`` (genhash mode): print the MD5 of a URL's body, as ``keepalived -T``.

::

    fastka -T [-S] [-I] -s ADDRESS -p PORT -u URL [-V VHOST] [-P 1.0|1.0c|1.1]
              [-t TIMEOUT] [-m FWMARK] [-v]

The request is the HTTP_GET/SSL_GET checker's (same code), and the printed digest is the
value that goes into ``digest``: 32 lowercase hex digits on a line. ``-v`` adds
Keepalived's hex dumps of the head, the body and the hash. An unreachable server prints
``Connection failed``; like Keepalived, the exit status is 0 either way (1 for bad usage).
"""

from __future__ import annotations

import getopt
import hashlib
import socket
import sys
import time
from typing import TextIO

from fastka.check.base import Result, Target
from fastka.check.http import HttpProbe, client_ssl_context
from fastka.check.spec import HttpParams, UrlSpec

USAGE = """\
Usage: fastka --genhash COMMAND [OPTIONS]
Commands:
   -s server-address -p port -u url
   -S -s server-address -p port -u url
   -h

Options:
Either long or short options are allowed.
   --use-ssl         -S       Use SSL connection to remote server.
   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
   --server          -s       Use the specified remote server address.
   --port            -p       Use the specified remote server port.
   --url             -u       Use the specified remote server url.
   --use-virtualhost -V       Use the specified virtualhost in GET query.
   --verbose         -v       Use verbose mode output.
   --help            -h       Display this short inlined help screen.
   --fwmark          -m       Use the specified FW mark.
   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                1.0c means 1.0 with 'Connection: close'
   --timeout         -t       Timeout in seconds
"""

LONG = ["use-ssl", "use-sni", "server=", "port=", "url=", "use-virtualhost=", "verbose", "help"]
LONG += ["fwmark=", "protocol=", "timeout="]
_BAR = "-----------------------"
RULE_HEAD = f"{_BAR}[    HTTP Header Buffer    ]{_BAR}\n"
RULE_HEAD_ASCII = f"{_BAR}[ HTTP Header Ascii Buffer ]{_BAR}\n"
RULE_BODY = f"{_BAR}[        HTML Buffer        ]{_BAR}\n"
RULE_HASH = f"{_BAR}[    HTML hash resulting    ]{_BAR}\n"
RULE_FINAL = f"{_BAR}[ HTML hash final resulting ]{_BAR}\n"


def hexdump(data: bytes) -> str:
    """Keepalived's dump: decimal offset, 8 bytes - 8 bytes, then the printable bytes."""
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexpart = ""
        for i in range(16):
            if i == 8:
                hexpart += "- "  # printed even when the row ends before it
            hexpart += f"{row[i]:02x} " if i < len(row) else "   "
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append(f"{off:04d}  {hexpart}  {text:<16}")
    return "".join(line + "\n" for line in lines)


def fetch(
    address: str,
    port: int,
    path: str,
    *,
    use_ssl: bool = False,
    sni: bool = False,
    virtualhost: str | None = None,
    protocol: str = "1.0",
    timeout: float = 5.0,
    fwmark: int | None = None,
) -> tuple[HttpProbe, Result]:
    """Run one fetch on a private loop; the probe keeps the head, body and MD5."""
    from fastka.loop import Loop

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    target = Target(address, port, family, fwmark=fwmark)
    params = HttpParams(
        urls=(UrlSpec(path=path, status_code=((100, 599),)),),
        ssl=use_ssl,
        virtualhost=virtualhost,
        http_protocol=protocol,
        enable_sni=sni,
    )
    loop = Loop()
    try:
        probe = HttpProbe(
            loop, target, timeout, params, client_ssl_context() if use_ssl else None, keep_body=True
        )
        results: list[Result] = []
        probe.start(0, results.append)
        while not results:
            loop.run_once(0.1)
    finally:
        loop.close()
    return probe, results[0]


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        opts, _args = getopt.gnu_getopt(argv, "SIs:p:u:V:vhm:P:t:", LONG)
    except getopt.GetoptError as exc:
        print(exc, file=sys.stderr)
        sys.stderr.write(USAGE)
        return 1
    server = path = None
    port = 0
    use_ssl = sni = verbose = False
    vhost: str | None = None
    protocol = "1.0"
    timeout = 5.0
    fwmark: int | None = None
    try:
        for opt, val in opts:
            if opt in ("-h", "--help"):
                sys.stderr.write(USAGE)
                return 0
            if opt in ("-S", "--use-ssl"):
                use_ssl = True
            elif opt in ("-I", "--use-sni"):
                sni = True
            elif opt in ("-s", "--server"):
                server = str(socket.getaddrinfo(val, None)[0][4][0])
            elif opt in ("-p", "--port"):
                port = int(val)
            elif opt in ("-u", "--url"):
                path = val
            elif opt in ("-V", "--use-virtualhost"):
                vhost = val
            elif opt in ("-v", "--verbose"):
                verbose = True
            elif opt in ("-m", "--fwmark"):
                fwmark = int(val, 0)
            elif opt in ("-P", "--protocol"):
                if val.lower() not in ("1.0", "1.0c", "1.1"):
                    raise ValueError(f"invalid protocol {val}")
                protocol = "1.0C" if val.lower() == "1.0c" else val
            elif opt in ("-t", "--timeout"):
                timeout = float(val)
    except (ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if not server or not port or not path:
        sys.stderr.write(USAGE)
        return 1
    t0 = time.monotonic()
    probe, _result = fetch(
        server, port, path, use_ssl=use_ssl, sni=sni, virtualhost=vhost, protocol=protocol,
        timeout=timeout, fwmark=fwmark,
    )  # fmt: skip
    if not probe.status:
        out.write("Connection failed\n")
        return 0
    body = bytes(probe.kept)
    digest = hashlib.md5(body, usedforsecurity=False)
    if verbose:
        out.write(RULE_HEAD)
        out.write(hexdump(probe.head))
        out.write(RULE_HEAD_ASCII)
        out.write(probe.head.decode("latin-1") + "\n")
        out.write(RULE_BODY)
        out.write(hexdump(body) + "\n")
        out.write(RULE_HASH)
        out.write(hexdump(digest.digest()))
        out.write(RULE_FINAL)
    out.write(digest.hexdigest() + "\n")
    if verbose:
        usecs = int((time.monotonic() - t0) * 1e6)
        out.write(f"\nGlobal response time for [{path}] = {usecs} usecs\n")
    return 0
