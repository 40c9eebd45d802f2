"""Fetching datasets: the local mirror's real files land checked in the cache layout; an unreachable mirror is
one line and leaves nothing behind."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from syre_rl.supervised import download as dl
from syre_rl.supervised.data import load_dataset


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a folder: ``(base URL, folder)``."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there once the socket is closed


def test_the_data_root_is_the_flag_then_the_variable_then_the_user_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SYRE_RL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if sys.platform.startswith("linux"):
        assert dl.resolve_data_dir() == tmp_path / "cache" / "syre_rl"
    monkeypatch.setenv("SYRE_RL_DATA", str(tmp_path / "env"))
    assert dl.resolve_data_dir() == tmp_path / "env"
    assert dl.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_real_mnist_files_from_a_local_mirror_are_checked_and_laid_out_like_torchvision(
    tmp_path, mirror
) -> None:
    source = dl.resolve_data_dir() / "MNIST" / "raw"
    if not (source / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"needs MNIST's four .gz files in {source} (set SYRE_RL_DATA)")
    url, folder = mirror
    for file, _, _ in dl.FILES["mnist"][1]:
        # re-compressed with another gzip header, as mirrors do: the content checksum still matches
        (folder / file).write_bytes(gzip.compress(gzip.decompress((source / file).read_bytes()), mtime=123))
    root = tmp_path / "cache"
    assert (
        dl.download("mnist", root, mirrors=[closed_port(), url]) == root / "MNIST" / "raw"
    )  # second mirror serves
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(
        f for f, _, _ in dl.FILES["mnist"][1]
    )
    assert sorted(p.name for p in root.rglob("*")) == sorted(
        ["MNIST", "raw", *(f for f, _, _ in dl.FILES["mnist"][1])]
    )
    assert len(load_dataset("mnist", root, train=False)) == 10_000
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.gz")}
    dl.download("mnist", root, mirrors=[closed_port()])  # valid copies: nothing fetched, no mirror needed
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.gz")} == before

    # A mirror serving a corrupted file: refused by its checksum, nothing moved into place.
    data = bytearray(gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    data[100] ^= 1
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(data)))
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(dl.DownloadError, match="checksum mismatch"):
        dl.download("mnist", root, mirrors=[url])
    assert not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in root.rglob(".*")]  # no temporary file left


def test_a_cifar_archive_is_checked_and_unpacked_atomically(tmp_path, mirror, monkeypatch) -> None:
    url, folder = mirror
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    (folder / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    md5 = hashlib.md5(buffer.getvalue()).hexdigest()  # noqa: S324  (the checksum CIFAR's authors publish)
    monkeypatch.setitem(
        dl.FILES, "cifar10", ("cifar-10-batches-py", (("cifar-10-python.tar.gz", "md5", md5),))
    )
    root = tmp_path / "data"
    assert dl.download("cifar10", root, mirrors=[url]) == root / "cifar-10-batches-py"
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]  # archive and work folder gone
    assert len(load_dataset("cifar10", root, train=True)) == 10
    shutil.rmtree(root)
    monkeypatch.setitem(
        dl.FILES, "cifar10", ("cifar-10-batches-py", (("cifar-10-python.tar.gz", "md5", "0" * 32),))
    )
    with pytest.raises(dl.DownloadError, match="checksum mismatch"):
        dl.download("cifar10", root, mirrors=[url])
    assert not root.exists()  # the folders this download made are gone too


def test_an_unreachable_mirror_is_one_line_and_leaves_nothing_behind(tmp_path) -> None:
    root = tmp_path / "data"
    code = (
        "import sys, syre_rl.supervised.download as d;"
        f"d.MIRRORS['mnist'] = ({closed_port()!r},);"
        f"sys.exit(d.main(['mnist', '--data-dir', {str(root)!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("download: error: cannot download mnist")
        and "127.0.0.1" in lines[0]
    )
    assert not root.exists() and list(tmp_path.iterdir()) == []
