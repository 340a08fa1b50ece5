"""Route libbpf's diagnostics into the ``bpf.libbpf`` logger (silent by default).

libbpf prints warnings, info and debug lines (map and program relocation, BTF loading, verifier
logs at high levels).  They become log records of the ``bpf.libbpf`` logger: WARNING, INFO and
DEBUG.  With no handler configured nothing is printed; ``logging.basicConfig(level=DEBUG)`` or
``bpf.enable_libbpf_debug()`` shows them.
"""

from __future__ import annotations

import logging

from . import _bpf

logger = logging.getLogger("bpf.libbpf")
logger.addHandler(logging.NullHandler())
logger.propagate = True

# libbpf_print_level: LIBBPF_WARN = 0, LIBBPF_INFO = 1, LIBBPF_DEBUG = 2
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def _emit(level: int, text: str) -> None:
    lvl = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.DEBUG
    if logger.isEnabledFor(lvl):
        logger.log(lvl, "%s", text.rstrip("\n"))


def enable_libbpf_debug(stream=None) -> logging.Handler:
    """Show libbpf's debug output on *stream* (stderr by default); return the handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("libbpf: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


_bpf._set_print_callback(_emit)
