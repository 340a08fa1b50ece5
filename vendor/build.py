"""Build the vendored static libraries (zlib, libelf, libbpf) with nothing but a C compiler.

Used by setup.py.  Instead of the upstream build systems (autotools for elfutils, a Makefile
for libbpf) each source file is compiled directly, in parallel, with flags chosen here, and
the objects are archived into ``libz.a``, ``libelf.a`` and ``libbpf.a``.  The public headers
are laid out like an install prefix (``include/{bpf,linux,libelf.h,gelf.h,zlib.h}``) so that
the extension sees our copies and never the machine's ``libbpf-dev``/``libelf-dev``.

Objects are cached per flag set: a rebuild recompiles only what changed.
"""

from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool(env: str, default: str) -> list[str]:
    return shlex.split(os.environ.get(env) or sysconfig.get_config_var(env) or default)


def libelf_sources(root: str) -> list[str]:
    """Return libelf's archive sources as listed in ``libelf_a_SOURCES`` of Makefile.am."""
    with open(os.path.join(root, "libelf", "Makefile.am"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^libelf_a_SOURCES\s*=\s*(.*)$", text, re.M)
    if not m:
        raise RuntimeError("libelf/Makefile.am: libelf_a_SOURCES not found")
    files = [os.path.join(root, "libelf", s) for s in m.group(1).split() if s.endswith(".c")]
    # 0.192's elf_begin.c/elf_end.c call eu_search_tree_init & co., which live in lib/.
    files.append(os.path.join(root, "lib", "eu-search.c"))
    return files


def _copy_headers(pairs: list[tuple[str, str]]) -> None:
    for src, dst in pairs:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
            shutil.copy2(src, dst)


class VendorBuild:
    """Compile and archive the three libraries into *build_dir*."""

    def __init__(self, sources: dict[str, str], build_dir: str, *, debug: bool = False,
                 extra_cflags: list[str] | None = None, jobs: int | None = None,
                 log=print) -> None:
        self.src = sources
        self.cc = _tool("CC", "cc")
        self.ar = _tool("AR", "ar")
        self.debug = debug
        self.extra = list(extra_cflags or [])
        self.jobs = jobs or int(os.environ.get("BPF_BUILD_JOBS", "0")) or (os.cpu_count() or 1)
        self.log = log
        base = ["-fPIC", "-fvisibility=hidden"]
        base += ["-O0", "-g"] if debug else ["-O2", "-g0"]
        base += self.extra
        self.base = base
        key = hashlib.sha256(" ".join(self.cc + base).encode()).hexdigest()[:12]
        self.dir = os.path.join(build_dir, f"vendor-{key}")
        self.include = os.path.join(self.dir, "include")

    # -- headers -------------------------------------------------------------------------------
    def install_headers(self) -> None:
        z, e, b = self.src["zlib"], self.src["elfutils"], self.src["libbpf"]
        inc = self.include
        pairs = [(os.path.join(z, h), os.path.join(inc, h)) for h in ("zlib.h", "zconf.h")]
        pairs += [(os.path.join(e, "libelf", h), os.path.join(inc, h))
                  for h in ("libelf.h", "gelf.h", "nlist.h")]
        pairs += [(h, os.path.join(inc, "bpf", os.path.basename(h)))
                  for h in glob.glob(os.path.join(b, "src", "*.h"))]
        pairs += [(h, os.path.join(inc, "linux", os.path.basename(h)))
                  for h in glob.glob(os.path.join(b, "include", "uapi", "linux", "*.h"))]
        _copy_headers(pairs)

    # -- compile -------------------------------------------------------------------------------
    def _compile_one(self, src: str, obj: str, flags: list[str]) -> None:
        if os.path.exists(obj) and os.path.getmtime(obj) >= os.path.getmtime(src):
            return
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        cmd = self.cc + flags + ["-c", src, "-o", obj + ".tmp"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compiling {src} failed:\n{shlex.join(cmd)}\n{r.stdout}")
        os.replace(obj + ".tmp", obj)

    def _library(self, name: str, sources: list[str], flags: list[str]) -> str:
        objdir = os.path.join(self.dir, "obj", name)
        objs = []
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as ex:
            futs = []
            for s in sources:
                o = os.path.join(objdir, os.path.basename(os.path.dirname(s)) + "_" +
                                 os.path.basename(s)[:-2] + ".o")
                objs.append(o)
                futs.append(ex.submit(self._compile_one, s, o, self.base + flags))
            for f in futs:
                f.result()
        lib = os.path.join(self.dir, "lib", f"lib{name}.a")
        os.makedirs(os.path.dirname(lib), exist_ok=True)
        if not os.path.exists(lib) or any(os.path.getmtime(o) > os.path.getmtime(lib)
                                          for o in objs):
            if os.path.exists(lib):
                os.unlink(lib)
            subprocess.run(self.ar + ["rcs", lib] + objs, check=True)
        return lib

    def build(self) -> list[str]:
        """Build all three archives; return them in link order (libbpf, libelf, libz)."""
        self.install_headers()
        z, e, b = self.src["zlib"], self.src["elfutils"], self.src["libbpf"]
        zflags = ["-D_LARGEFILE64_SOURCE=1", "-DHAVE_HIDDEN", "-DHAVE_UNISTD_H",
                  "-DHAVE_STDARG_H", "-I" + z]
        # Our config.h first, then elfutils' own directories, then our zlib.h.
        eflags = ["-std=gnu99", "-D_GNU_SOURCE", "-DHAVE_CONFIG_H",
                  "-I" + os.path.join(HERE, "libelf"), "-I" + os.path.join(e, "libelf"),
                  "-I" + os.path.join(e, "lib"), "-I" + e, "-I" + self.include]
        bflags = ["-std=gnu11", "-D_LARGEFILE64_SOURCE", "-D_FILE_OFFSET_BITS=64",
                  "-I" + os.path.join(b, "src"), "-I" + os.path.join(b, "include"),
                  "-I" + os.path.join(b, "include", "uapi"), "-I" + self.include,
                  "-Wno-unused-parameter"]
        libz = self._library("z", sorted(glob.glob(os.path.join(z, "*.c"))), zflags)
        libelf = self._library("elf", libelf_sources(e), eflags)
        libbpf = self._library("bpf", sorted(glob.glob(os.path.join(b, "src", "*.c"))), bflags)
        return [libbpf, libelf, libz]


if __name__ == "__main__":  # manual use: python vendor/build.py [build-dir]
    sys.path.insert(0, HERE)
    import fetch

    srcs = fetch.ensure()
    vb = VendorBuild(srcs, sys.argv[1] if len(sys.argv) > 1 else "build")
    print("\n".join(vb.build()))
