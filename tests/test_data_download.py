"""Downloads against a loopback HTTP server: verified files land, bad ones never do."""

import hashlib
import http.server
import socket
import threading

import pytest

from diffusiontools.data import download
from diffusiontools.data.download import (
    ChecksumError,
    DownloadError,
    download_file,
    download_mnist,
    md5sum,
)
from diffusiontools.errors import UserError

FILES = {f"/{name}": f"content of {name}".encode() * 100 for name in download.MNIST_MD5}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_url():
    """A loopback port that nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_good_file_downloads_and_verifies(tmp_path, server_url):
    body = FILES["/t10k-labels-idx1-ubyte.gz"]
    dest = tmp_path / "sub" / "t10k-labels-idx1-ubyte.gz"
    assert download_file(server_url + dest.name, dest, md5(body), timeout=5) == dest
    assert dest.read_bytes() == body
    assert md5sum(dest) == md5(body)
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp file left


def test_corrupted_file_is_refused_and_deleted(tmp_path, server_url):
    url = server_url + "t10k-labels-idx1-ubyte.gz"
    expected = "0" * 32
    with pytest.raises(ChecksumError) as e:
        download_file(url, tmp_path / "t10k-labels-idx1-ubyte.gz", expected, timeout=5)
    message = str(e.value)
    assert url in message and expected in message
    assert md5(FILES["/t10k-labels-idx1-ubyte.gz"]) in message
    assert isinstance(e.value, UserError)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_download_error(tmp_path, server_url):
    with pytest.raises(DownloadError, match="404"):
        download_file(server_url + "missing.gz", tmp_path / "missing.gz", "0" * 32, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_no_server_is_download_error(tmp_path, closed_url):
    with pytest.raises(DownloadError, match="could not download"):
        download_file(closed_url + "x.gz", tmp_path / "x.gz", "0" * 32, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_download_mnist_falls_back_to_next_mirror(tmp_path, monkeypatch, server_url, closed_url):
    table = {path[1:]: md5(body) for path, body in FILES.items()}
    monkeypatch.setattr(download, "MNIST_MD5", table)
    paths = download_mnist(tmp_path, mirrors=[closed_url, server_url], timeout=5)
    assert sorted(paths) == sorted(table)
    assert all(md5sum(path) == table[name] for name, path in paths.items())
    # A second call finds the verified files and needs no network at all.
    assert download_mnist(tmp_path, mirrors=[closed_url], timeout=5) == paths


def test_download_mnist_reports_every_mirror(tmp_path, closed_url):
    with pytest.raises(DownloadError, match="from any mirror") as e:
        download_mnist(tmp_path, mirrors=[closed_url, closed_url + "b/"], timeout=5)
    assert str(e.value).count("could not download http") == 2
