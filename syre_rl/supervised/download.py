"""Fetch the datasets into a data folder, checked and atomic: ``python -m syre_rl.supervised.download mnist``.

Where data lives, in this order: ``--data-dir``, then ``$SYRE_RL_DATA``, then a per-user cache folder
(:func:`cache_dir`: ``$XDG_CACHE_HOME/syre_rl`` or ``~/.cache/syre_rl`` on Linux, ``~/Library/Caches/syre_rl`` on
macOS, ``%LOCALAPPDATA%\\syre_rl\\Cache`` on Windows). Files keep torchvision's layout (``MNIST/raw/*.gz``,
``FashionMNIST/raw/*.gz``, ``cifar-10-batches-py/``, ``cifar-100-python/``), so a folder torchvision filled works
too. Every file is tried from each of its dataset's mirrors in turn and checked before it is moved into place:
MNIST and Fashion-MNIST by the SHA-256 of their decompressed content (mirrors re-compress the same bytes with
other gzip headers), CIFAR by the MD5 its authors publish for the archive. A download writes into a hidden
temporary file or folder beside its target and renames it into place, so an interrupted or failed one leaves
nothing half-written.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["FILES", "MIRRORS", "cache_dir", "download", "resolve_data_dir"]

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
}
# dataset -> folder under the data root, and (file, check, digest) per file; "content" is the SHA-256 of the
# decompressed bytes, "md5" the MD5 of the file itself.
FILES: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "mnist": (
        "MNIST/raw",
        (
            (
                "train-images-idx3-ubyte.gz",
                "content",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "content",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "content",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "content",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        ),
    ),
    "fashion-mnist": (
        "FashionMNIST/raw",
        (
            (
                "train-images-idx3-ubyte.gz",
                "content",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "content",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "content",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "content",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        ),
    ),
    "cifar10": (
        "cifar-10-batches-py",
        (("cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a"),),
    ),
    "cifar100": (
        "cifar-100-python",
        (("cifar-100-python.tar.gz", "md5", "eb9058c3a382ffc7106e4002c42a8d85"),),
    ),
}
TIMEOUT = 30.0  # seconds without an answer before a mirror counts as unreachable


class DownloadError(Exception):
    """Every mirror failed, or a file did not match its checksum; nothing was left behind."""


def cache_dir() -> Path:
    """The per-user cache folder for data, the platform's usual place."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "syre_rl"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "syre_rl" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "syre_rl"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$SYRE_RL_DATA``, else :func:`cache_dir`."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("SYRE_RL_DATA")
    return Path(env) if env else cache_dir()


def _digest(path: Path, check: str) -> str:
    digest = hashlib.sha256() if check == "content" else hashlib.md5()  # noqa: S324  (CIFAR's published MD5)
    with gzip.open(path, "rb") if check == "content" else path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _valid(path: Path, check: str, expected: str) -> bool:
    try:
        return _digest(path, check) == expected
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _fetch(url: str, out: IO[bytes], label: str) -> None:
    """Copy ``url`` into ``out`` with a progress line on a terminal."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310  (fixed http(s) mirrors)
        total = int(response.headers.get("Content-Length") or 0)
        done, tty = 0, sys.stderr.isatty()
        while chunk := response.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if tty:
                of = f" of {total / 2**20:.1f}" if total else ""
                print(f"\r{label}: {done / 2**20:.1f}{of} MB", end="", file=sys.stderr, flush=True)
        if tty:
            print(file=sys.stderr)


def _download_file(
    name: str, folder: Path, file: str, check: str, expected: str, mirrors: Sequence[str]
) -> Path:
    """One file into ``folder`` (skipped when a valid copy is there), from the first mirror that serves it."""
    target = folder / file
    if target.is_file() and _valid(target, check, expected):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror + file
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file}-", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, f"{name} {file}")
            if not _valid(tmp, check, expected):
                failures.append(f"{url}: checksum mismatch")
                continue
            os.replace(tmp, target)
            return target
        except (OSError, urllib.error.URLError, ValueError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"cannot download {name} {file}: " + "; ".join(failures))


def download(name: str, root: str | Path | None = None, mirrors: Sequence[str] | None = None) -> Path:
    """Fetch dataset ``name`` into ``root`` (default :func:`resolve_data_dir`); returns its folder.

    :param name: ``mnist``, ``fashion-mnist``, ``cifar10`` or ``cifar100``
    :param mirrors: base URLs to try in turn (default :data:`MIRRORS`)
    :raises DownloadError: every mirror failed for a file, or no copy matched its checksum
    """
    if name not in FILES:
        raise DownloadError(f"unknown dataset {name!r}; choose one of: {', '.join(FILES)}")
    root = resolve_data_dir(root)
    folder, files = FILES[name]
    created = next((p for p in reversed((root / folder).parents) if not p.exists()), None)
    if created is None and not (root / folder).exists():
        created = root / folder
    try:
        return _download(name, root, folder, files, tuple(mirrors or MIRRORS[name]))
    except BaseException:
        if created is not None:  # the folders this call made hold nothing of value: leave the disk as it was
            shutil.rmtree(created, ignore_errors=True)
        raise


def _download(
    name: str, root: Path, folder: str, files: tuple[tuple[str, str, str], ...], mirrors: tuple[str, ...]
) -> Path:
    if name in ("mnist", "fashion-mnist"):
        for file, check, expected in files:
            _download_file(name, root / folder, file, check, expected, mirrors)
        return root / folder
    target = root / folder
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
    try:
        ((file, check, expected),) = files
        archive = _download_file(name, work, file, check, expected, mirrors)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        if not (work / folder).is_dir():
            raise DownloadError(f"{archive.name} holds no {folder}/ folder")
        os.replace(work / folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


PROG = "download"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from syre_rl.cli import OneLineParser  # noqa: PLC0415

    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(FILES))
    parser.add_argument("--data-dir", type=Path, help="default: $SYRE_RL_DATA, else the per-user cache folder")
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    """Nothing to check before the downloads: each one verifies its own files."""


def run(args: argparse.Namespace) -> int:
    from syre_rl.cli import UsageError  # noqa: PLC0415

    for name in args.datasets:
        try:
            print(f"{name}: {download(name, args.data_dir)}")
        except DownloadError as err:
            raise UsageError(str(err)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    from syre_rl.lifecycle import run_command  # noqa: PLC0415

    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
