"""Build script: fetches (if needed) and compiles the vendored libraries, then the extension.

Knobs (environment variables):
  BPF_DEBUG=1           -O0 -g for the extension and the vendored libraries, asserts on
  BPF_SANITIZE=a,b      e.g. "address,undefined": build with those sanitizers
  BPF_WERROR=1          warnings are errors in our own C files
  BPF_VENDOR_CACHE=DIR  directory of source archives (read first, written after a download)
  BPF_VENDOR_OFFLINE=1  never download vendored sources (an sdist embeds them)
  BPF_BUILD_JOBS=N      parallel compiler processes for the vendored libraries
"""

import glob
import os
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "vendor"))
import build as vendor_build  # noqa: E402  (vendor/build.py)
import fetch as vendor_fetch  # noqa: E402  (vendor/fetch.py)


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def _sanitizers():
    s = os.environ.get("BPF_SANITIZE", "").strip()
    return [f"-fsanitize={s}", "-fno-omit-frame-pointer"] if s else []


class BuildExt(build_ext):
    """build_ext that first builds libbpf, libelf and zlib as static PIC archives."""

    def _linker_hides_with_exclude_libs(self, cc):
        # GNU ld and gold know --exclude-libs; lld and zig's linker do not.
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "t.c")
            with open(src, "w") as f:
                f.write("int f(void) { return 0; }\n")
            r = subprocess.run(cc + ["-shared", "-fPIC", src, "-o", os.path.join(d, "t.so"),
                                     "-Wl,--exclude-libs,ALL"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return r.returncode == 0

    def run(self):
        srcs = vendor_fetch.ensure(log=lambda m: print(m, flush=True))
        debug = _flag("BPF_DEBUG") or self.debug
        vb = vendor_build.VendorBuild(srcs, os.path.join(HERE, "build"), debug=debug,
                                      extra_cflags=_sanitizers())
        libs = vb.build()
        cc = vendor_build._tool("CC", "cc")
        for ext in self.extensions:
            ext.include_dirs[:0] = [vb.include]  # ours before the system's
            ext.extra_objects = libs
            if self._linker_hides_with_exclude_libs(cc):
                ext.extra_link_args += ["-Wl,--exclude-libs,ALL"]
            else:
                ext.extra_link_args += [
                    "-Wl,--version-script=" + os.path.join(HERE, "src", "_bpf.map")]
            ext.extra_compile_args += ["-std=gnu11", "-fvisibility=hidden", "-Wall",
                                       "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
            ext.extra_compile_args += _sanitizers()
            ext.extra_link_args += _sanitizers()
            if debug:
                ext.extra_compile_args += ["-O0", "-g", "-UNDEBUG"]
            if _flag("BPF_WERROR"):
                ext.extra_compile_args += ["-Werror"]
        super().run()
        self._ship_licenses(srcs)

    def _ship_licenses(self, srcs):
        # The wheel links these libraries statically, so it carries their licenses
        # (libelf is LGPL-3.0+/GPL-2.0+: see docs/building.md on relinking).
        import shutil

        dest = os.path.join(os.path.dirname(self.get_ext_fullpath("bpf._bpf")), "_licenses")
        os.makedirs(dest, exist_ok=True)
        for name, d in srcs.items():
            for f in sorted(glob.glob(os.path.join(d, "LICENSE*")) +
                            glob.glob(os.path.join(d, "COPYING*"))):
                shutil.copy2(f, os.path.join(dest, f"{name}-{os.path.basename(f)}"))


class Sdist(sdist):
    """sdist that embeds the verified, extracted vendored sources."""

    def run(self):
        vendor_fetch.ensure(log=lambda m: print(m, flush=True))
        super().run()


setup(
    ext_modules=[
        Extension(
            "bpf._bpf",
            sources=["src/_bpfmodule.c"],
            depends=sorted(glob.glob("src/*.c") + glob.glob("src/*.h")),
            include_dirs=["src"],
        )
    ],
    cmdclass={"build_ext": BuildExt, "sdist": Sdist},
)
