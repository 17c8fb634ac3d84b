"""Build the compiled core: Cython modules and the cffi IPVS module.

Metadata lives in pyproject.toml; this file only lists extensions.

Switches (environment):
  FASTKA_NO_EXTENSIONS=1  build nothing compiled; the pure-Python references are used.
  FASTKA_DEBUG_BUILD=1    -O0 -g, Cython line tracing (CYTHON_TRACE_NOGIL).
  FASTKA_SANITIZE=1       -fsanitize=address,undefined (run with LD_PRELOAD=libasan).
"""

import os

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("FASTKA_NO_EXTENSIONS")
DEBUG = _flag("FASTKA_DEBUG_BUILD")
SANITIZE = _flag("FASTKA_SANITIZE")

# Cython modules: module name -> source.
CYTHON_MODULES = {
    "fastka._vrrp": "src/fastka/_vrrp.pyx",
    "fastka._loop": "src/fastka/_loop.pyx",
    "fastka._check": "src/fastka/_check.pyx",
    "fastka._vrrp_engine": "src/fastka/_vrrp_engine.pyx",
}


def _extensions() -> list[Extension]:
    from Cython.Build import cythonize

    cflags = ["-std=gnu11"]
    ldflags: list[str] = []
    macros: list[tuple[str, str | None]] = []
    directives = {"language_level": "3", "embedsignature": True}
    if DEBUG:
        cflags += ["-O0", "-g3"]
        macros += [("CYTHON_TRACE_NOGIL", "1")]
        directives.update(linetrace=True, boundscheck=True, wraparound=True)
    else:
        cflags += ["-O2"]
        directives.update(boundscheck=False, wraparound=False, cdivision=True)
    if SANITIZE:
        cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        ldflags += ["-fsanitize=address,undefined"]
    exts = [
        Extension(
            name,
            [src],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            define_macros=macros,
        )
        for name, src in CYTHON_MODULES.items()
    ]
    return cythonize(
        exts,
        compiler_directives=directives,
        include_path=["src"],
        annotate=DEBUG,
        quiet=True,
    )


if NO_EXTENSIONS:
    setup()
else:
    setup(
        ext_modules=_extensions(),
        cffi_modules=["src/fastka/_ipvs_build.py:ffibuilder"],
    )
