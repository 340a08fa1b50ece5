#!/usr/bin/env python3
"""Fetch, verify and extract the pinned third-party sources (stdlib only).

The sources are never committed: this script brings them in at build time, checks each archive
against the sha256 pins in ``pins.json`` before anything is extracted, and keeps only the parts
the build needs under ``vendor/fetched/<name>/``.

Where an archive comes from, in order:
  1. a local cache directory named by ``BPF_VENDOR_CACHE`` (archives are also stored there);
  2. the upstream URLs of the pin;
  3. every Debian mirror configured in this machine's apt sources, plus the pool path.

``BPF_VENDOR_OFFLINE=1`` forbids the network (used to prove that an sdist builds from what it
embeds).  Run ``python vendor/fetch.py --help`` for the command line.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PINS_FILE = os.path.join(HERE, "pins.json")
DEFAULT_DEST = os.path.join(HERE, "fetched")
STAMP = ".bpf-vendor-stamp"


class FetchError(RuntimeError):
    """An archive could not be obtained or failed verification."""


def load_pins(path: str = PINS_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(name: str, data: bytes, pins: list[str]) -> None:
    """Raise FetchError naming the file and both sums unless *data* matches one pin."""
    got = sha256_of(data)
    if got not in pins:
        raise FetchError(
            f"{name}: sha256 mismatch: expected {' or '.join(pins)}, got {got} "
            f"({len(data)} bytes); the archive is corrupt, truncated or not the pinned release"
        )


def debian_mirrors() -> list[str]:
    """Return the base URLs of every Debian mirror in the apt configuration, in file order."""
    uris: list[str] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if line.lower().startswith("uris:"):
                        uris.extend(line.split(":", 1)[1].split())
        except OSError:
            continue
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    words = line.split("#", 1)[0].split()
                    if not words or words[0] != "deb":
                        continue
                    words = words[1:]
                    if words and words[0].startswith("["):  # options like [arch=amd64]
                        while words and not words[0].endswith("]"):
                            words = words[1:]
                        words = words[1:]
                    if words:
                        uris.append(words[0])
        except OSError:
            continue
    seen: list[str] = []
    for u in uris:
        u = u.rstrip("/")
        # Security and update archives never carry upstream tarballs of these packages.
        if u.startswith(("http://", "https://")) and u not in seen:
            seen.append(u)
    return seen


def candidate_urls(pin: dict) -> list[str]:
    urls = list(pin.get("urls", []))
    for mirror in debian_mirrors():
        for pool in pin.get("debian_pool", []):
            urls.append(f"{mirror}/{pool}")
    return urls


def _download(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "bpf-vendor-fetch/1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def obtain(name: str, pin: dict, cache: str | None, offline: bool, log=print) -> bytes:
    """Return the verified archive bytes for *pin*, trying cache, upstream, then Debian."""
    errors: list[str] = []
    if cache:
        for cname in pin.get("cache_names", []) + [pin["archive"]]:
            path = os.path.join(cache, cname)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                try:
                    verify(path, data, pin["sha256"])
                    return data
                except FetchError as e:
                    errors.append(str(e))
    if offline:
        raise FetchError(
            f"{name} {pin['version']}: not in the cache and BPF_VENDOR_OFFLINE forbids "
            f"downloading" + ("".join("\n  " + e for e in errors))
        )
    timeout = float(os.environ.get("BPF_VENDOR_TIMEOUT", "30"))
    for url in candidate_urls(pin):
        try:
            data = _download(url, timeout)
        except Exception as e:  # any network failure: try the next source
            errors.append(f"{url}: {e}")
            continue
        try:
            verify(url, data, pin["sha256"])
        except FetchError as e:
            errors.append(str(e))
            continue
        log(f"vendor: {name} {pin['version']} from {url}")
        if cache:
            try:
                os.makedirs(cache, exist_ok=True)
                with open(os.path.join(cache, pin["archive"]), "wb") as f:
                    f.write(data)
            except OSError:
                pass
        return data
    raise FetchError(
        f"{name} {pin['version']}: no source worked:" + "".join("\n  " + e for e in errors)
    )


def _wanted(rel: str, keep: list[str]) -> bool:
    for k in keep:
        if k.endswith("/"):
            if rel.startswith(k):
                return True
        elif "*" in k:
            if "/" not in rel and fnmatch.fnmatch(rel, k):
                return True
        elif "/" not in rel and rel.startswith(k):
            return True
    return False


def extract(name: str, data: bytes, keep: list[str], dest: str) -> int:
    """Extract the kept members of the archive into *dest* (replaced atomically); return count."""
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=parent)
    count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                parts = member.name.split("/", 1)
                if len(parts) < 2 or not parts[1]:
                    continue
                rel = parts[1]
                if not _wanted(rel, keep):
                    continue
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise FetchError(f"{name}: unsafe path in archive: {member.name}")
                target = os.path.join(tmp, rel)
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                elif member.isfile():
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.chmod(target, 0o644)
                    count += 1
                elif member.issym() or member.islnk():
                    # Sources we keep have no links; copying them would allow escaping dest.
                    continue
        with open(os.path.join(tmp, STAMP), "w", encoding="utf-8") as f:
            f.write(sha256_of(data) + "\n")
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return count


def is_present(pin: dict, dest: str) -> bool:
    stamp = os.path.join(dest, STAMP)
    try:
        with open(stamp, encoding="utf-8") as f:
            return f.read().strip() in pin["sha256"]
    except OSError:
        return False


def ensure(dest_root: str = DEFAULT_DEST, names: list[str] | None = None,
           cache: str | None = None, offline: bool | None = None, log=print) -> dict[str, str]:
    """Make every pinned source present under *dest_root*; return {name: directory}."""
    pins = load_pins()
    if cache is None:
        cache = os.environ.get("BPF_VENDOR_CACHE") or None
    if offline is None:
        offline = os.environ.get("BPF_VENDOR_OFFLINE", "") not in ("", "0")
    out = {}
    for name in names or list(pins):
        pin = pins[name]
        dest = os.path.join(dest_root, name)
        if not is_present(pin, dest):
            data = obtain(name, pin, cache, offline, log=log)
            n = extract(name, data, pin["keep"], dest)
            log(f"vendor: {name} {pin['version']}: {n} files in {dest}")
        out[name] = dest
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=DEFAULT_DEST, help="where sources are extracted")
    ap.add_argument("--cache", default=None, help="directory of archives (BPF_VENDOR_CACHE)")
    ap.add_argument("--offline", action="store_true", help="never download")
    ap.add_argument("--verify", metavar="ARCHIVE", help="only check ARCHIVE against the pin")
    ap.add_argument("--name", help="with --verify: which pin (libbpf, elfutils, zlib)")
    ap.add_argument("names", nargs="*", help="which sources (default: all)")
    args = ap.parse_args(argv)
    try:
        if args.verify:
            pins = load_pins()
            with open(args.verify, "rb") as f:
                data = f.read()
            verify(args.verify, data, pins[args.name]["sha256"])
            print(f"{args.verify}: OK")
            return 0
        ensure(args.dest, args.names or None, args.cache, args.offline or None)
    except FetchError as e:
        print(f"vendor/fetch.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
