"""TCP_CHECK: success when a TCP connection completes within ``connect_timeout``."""

from __future__ import annotations

from fastka.check.base import StreamProbe


class TcpProbe(StreamProbe):
    __slots__ = ()

    def connected_quick(self) -> bool:
        self.finish(True)
        return True
