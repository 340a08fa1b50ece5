"""Map argument validation that needs no kernel (everything here fails before any syscall)."""

from __future__ import annotations

import pytest

import bpf
from bpf import MapType, _bpf


def test_public_names():
    assert issubclass(bpf.Map, _bpf.Map)
    assert bpf.unpin is _bpf.unpin
    for name in ("lookup", "lookup_into", "update", "delete", "next_key", "lookup_and_delete",
                 "freeze", "pin", "lookup_batch", "lookup_and_delete_batch", "update_batch",
                 "delete_batch", "iter_batches", "items", "keys", "values", "get", "typed",
                 "create", "from_fd", "from_pin", "from_id", "info", "close", "detach", "dup"):
        assert callable(getattr(bpf.Map, name)), name


def test_hot_methods_are_c():
    # No Python frame between the caller and the syscall.
    for name in ("lookup", "lookup_into", "update", "delete", "next_key", "get",
                 "lookup_and_delete", "lookup_batch", "update_batch"):
        assert type(getattr(bpf.Map, name)).__name__ == "method_descriptor", name


def test_no_direct_instances():
    with pytest.raises(TypeError, match="from_fd"):
        bpf.Map()


@pytest.mark.parametrize("t", ["SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"])
def test_storage_without_btf(t):
    with pytest.raises(ValueError, match="BTF"):
        bpf.Map.create(MapType[t], 4, 4, 0)


def test_bad_names():
    with pytest.raises(ValueError):
        bpf.Map.create(MapType.HASH, 4, 4, 1, name="has space")
    with pytest.raises(ValueError):
        bpf.Map.create(MapType.HASH, 4, 4, 1, name="a" * 16)
    with pytest.raises(TypeError):
        _bpf.Map.create(MapType.HASH, 4, 4, 1, name=b"bytes")


def test_from_fd_rejects_negative():
    with pytest.raises(ValueError, match=">= 0"):
        bpf.Map.from_fd(-3)


def test_split():
    assert _bpf._split(b"abcdef", 2, 3) == [b"ab", b"cd", b"ef"]
    assert _bpf._split(bytearray(b"abcdef"), 3, 1) == [b"abc"]
    assert _bpf._split(b"", 4, 0) == []
    with pytest.raises(ValueError):
        _bpf._split(b"abc", 2, 2)
    with pytest.raises(TypeError):
        _bpf._split("str", 1, 1)
