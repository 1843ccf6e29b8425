"""Build the optional Cython extension ``mlcache._speedups`` from ``ext/``.

The extension is optional: with ``MLCACHE_NO_EXTENSIONS=1``, or when no C compiler works,
the package installs and runs on its pure-Python twins (``mlcache.COMPILED`` is then False).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build extensions, but fall back to pure Python when compiling fails."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, ...
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc):
        print(
            f"WARNING: mlcache C extension not built ({exc}); using the pure-Python twins.",
            file=sys.stderr,
        )


def extensions():
    if os.environ.get("MLCACHE_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # building without Cython: pure-Python install
        print("WARNING: Cython not available; using the pure-Python twins.", file=sys.stderr)
        return []

    ext = Extension(
        "mlcache._speedups",
        sources=["ext/_speedups.pyx"],
        include_dirs=["ext"],
        depends=["ext/mlclock.h", "ext/mlblake2.h", *map(str, __import__("pathlib").Path("ext").glob("*.pxi"))],
        extra_compile_args=["-O3"] if os.name != "nt" else [],
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
