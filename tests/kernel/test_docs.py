"""Every ```python block in docs/*.md and README.md runs, page by page, in order.

Blocks of one page share a namespace (like a reader typing them in).  A block fenced as
```python notest is shown but not run (used only for fragments that need hardware).
bpffs is mounted at /sys/fs/bpf and tracefs at /sys/kernel/tracing for the duration, as on a
typical machine, and unmounted afterwards if this test mounted them.
"""

from __future__ import annotations

import os
import re
import pathlib

import pytest

from conftest import mounted

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(page: pathlib.Path) -> list[tuple[int, str]]:
    text = page.read_text()
    out = []
    for m in BLOCK.finditer(text):
        if "notest" in m.group(1):
            continue
        line = text[: m.start()].count("\n") + 2
        out.append((line, m.group(2)))
    return out


PAGES = [p for p in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"] if blocks(p)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_doc_examples(page, tmp_path, monkeypatch):
    code = blocks(page)
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": f"docs_{page.stem}"}
    with mounted("bpf", "/sys/fs/bpf"), mounted("tracefs", "/sys/kernel/tracing"):
        try:
            for line, src in code:
                exec(compile(src, f"{page.name}:{line}", "exec"), ns)
        finally:
            # Examples close what they open; anything left must not leak into other tests.
            for v in list(ns.values()):
                close = getattr(v, "close", None)
                if callable(close) and hasattr(v, "closed"):
                    try:
                        close()
                    except Exception:
                        pass
