"""eBPF for Python: maps, programs, links and event streams over a vendored libbpf.

The public surface is re-exported here; see docs/ for the guide.  Each module lists its public
names in ``__all__``.
"""

from __future__ import annotations

from . import _log  # noqa: F401  (installs libbpf's print hook into logging)
from ._log import enable_libbpf_debug
from ._bpf import (
    BPFError,
    BPFPermissionError,
    KeyExistsError,
    KeyNotFoundError,
    NotSupportedError,
    VerifierError,
    kernel_release,
    libbpf_version,
    possible_cpus,
)
from .enums import AttachType, LinkType, MapFlags, MapType, ProgType, UpdateFlags
from .maps import *  # noqa: F401,F403
from .codecs import *  # noqa: F401,F403
from .programs import *  # noqa: F401,F403
from .links import *  # noqa: F401,F403
from .events import *  # noqa: F401,F403
from .btf import *  # noqa: F401,F403
from .typed import *  # noqa: F401,F403
from .introspect import *  # noqa: F401,F403
from .objects import *  # noqa: F401,F403
from . import legacy  # noqa: F401
from . import features  # noqa: F401
from . import asm  # noqa: F401

__version__ = "0.1.0"

# bpf.maps(), bpf.programs() (bpf.introspect) and bpf.links() (bpf.links) shadow the
# submodules of the same names.
_maps, _programs, _links = (__import__("sys").modules[f"{__name__}.{_m}"]
                            for _m in ("maps", "programs", "links"))
from . import codecs as _codecs  # noqa: E402
from . import events as _events, btf as _btf  # noqa: E402
from . import typed as _typed, introspect as _introspect  # noqa: E402
from . import objects as _objects  # noqa: E402

__all__ = [
    "__version__", "enable_libbpf_debug", "libbpf_version", "possible_cpus", "kernel_release",
    "BPFError", "BPFPermissionError", "KeyExistsError", "KeyNotFoundError",
    "NotSupportedError", "VerifierError",
    "AttachType", "LinkType", "MapFlags", "MapType", "ProgType", "UpdateFlags", "features", "asm",
    *_maps.__all__, *_codecs.__all__, *_programs.__all__, *_links.__all__, *_events.__all__,
    *_btf.__all__, *_typed.__all__, *_introspect.__all__, *_objects.__all__, "legacy",
]
