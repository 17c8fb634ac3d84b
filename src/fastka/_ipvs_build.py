"""cffi build script for ``fastka._ipvs`` (API mode, out of line).

The C implementation lives in ``_ipvs.c``; ``_ipvs.h`` holds the declarations that
both the C file and this cdef use, so there is one place for each prototype.
"""

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef_from_header(path: str) -> str:
    """The prototypes and types of ``_ipvs.h`` without preprocessor lines."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(os.path.join(HERE, "_ipvs.h")))
_debug = os.environ.get("FASTKA_DEBUG_BUILD", "") not in ("", "0")
ffibuilder.set_source(
    "fastka._ipvs",
    '#include "_ipvs.h"',
    sources=[os.path.relpath(os.path.join(HERE, "_ipvs.c"))],
    include_dirs=[HERE],
    extra_compile_args=["-std=gnu11", "-Wall", "-Wextra"] + (["-O0", "-g"] if _debug else ["-O2"]),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
