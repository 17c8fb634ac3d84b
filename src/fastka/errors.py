"""The one root of fastka's own exceptions.

Errors that come from the kernel stay ``OSError`` subclasses (``ConnectionRefusedError``,
``PermissionError`` ...) and are wrapped only where the domain adds context (which IPVS
command, which netlink operation).
"""

from __future__ import annotations

import os
from enum import IntEnum


class FastkaError(Exception):
    """Base class of every exception fastka raises on purpose."""


class ConfigError(FastkaError):
    """A problem in keepalived.conf, with the place it was found.

    ``str()`` gives Keepalived's format: ``(FILE: Line N) message``.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.file:
            return f"({self.file}: Line {self.line}) {self.message}"
        return f"(Line {self.line}) {self.message}"


class ProtocolError(FastkaError):
    """Bytes from the network that do not make a valid protocol message."""


class VrrpDecodeError(ProtocolError):
    """A VRRP packet failed validation; ``reason`` says which check (an ``IntEnum``)."""

    def __init__(self, reason: IntEnum, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.name}: {detail}" if detail else reason.name)


class NetlinkOpError(FastkaError):
    """A netlink request the kernel refused: ``errno`` and the operation that failed."""

    def __init__(self, errno: int, op: str) -> None:
        self.errno = errno
        self.op = op
        super().__init__(f"{op}: errno {errno}")


class IpvsError(NetlinkOpError):
    """An IPVS generic-netlink command the kernel refused.

    ``service`` and ``dest`` (``fastka.ipvs.Service``/``Dest``, when the command had them)
    name the entry, so that one failure in a batch can be told from the rest.
    """

    def __init__(self, errno: int, op: str, service: object = None, dest: object = None) -> None:
        self.service = service
        self.dest = dest
        super().__init__(errno, op)

    def __str__(self) -> str:
        where = ""
        if self.service is not None:
            where = f" {self.service}" + (f" -> {self.dest}" if self.dest is not None else "")
        return f"{self.op}{where}: {os.strerror(self.errno)} (errno {self.errno})"
