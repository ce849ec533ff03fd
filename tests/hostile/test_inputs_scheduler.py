"""Hostile inputs, services: scheduler addresses that are not Dask schedulers.

A ``--scheduler`` address where nothing listens, where something accepts and
stays silent, closes at once, or speaks another protocol. Each is a DistributedError naming the address
within the connect timeout (CONNECT_TIMEOUT_S, lowered here), never a hang or a 30 s wait. Servers are
local sockets on 127.0.0.1 only, closed after each test.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("distributed")

from hsifusion.engine.errors import DistributedError, InputError
from hsifusion.engine.pipeline import distributed as dist
from rasterkit import synthetic_pair

from .inputs_kit import assert_cli_error

TIMEOUT_S = 1.0


@pytest.fixture()
def pair(tmp_path):
    return synthetic_pair(tmp_path, ratio=2, lr_size=(4, 4), bands=4, msi_bands=2)


@pytest.fixture()
def fast_timeout(monkeypatch):
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", TIMEOUT_S)


class LoopbackServer:
    """A loopback TCP server that is not a Dask scheduler.

    Accepts on 127.0.0.1 and, per connection, sends ``greeting`` (if any) then either closes or holds
    the socket open without a word until :meth:`stop`.
    """

    def __init__(self, greeting: bytes = b"", close: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.greeting, self.close, self.held, self.running = greeting, close, [], True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self.greeting:
                conn.sendall(self.greeting)
            if self.close:
                conn.close()
            else:
                self.held.append(conn)

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture()
def server(request):
    srv = LoopbackServer(**getattr(request, "param", {}))
    yield srv
    srv.stop()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fuse_argv(pair, out, address):
    return ["fuse", "upsample", "--hsi", pair[0], "--msi", pair[1], "-o", out, "--scheduler", address]


@pytest.mark.parametrize("server,needle", [
    ({}, "accepts connections but sent no Dask handshake within 1 s"),
    ({"close": True}, "closed the connection without a Dask handshake"),
    ({"greeting": b"SSH-2.0-OpenSSH_9.6\r\n"}, "answered b'SSH-2.0-'..., not a Dask handshake"),
], indirect=["server"], ids=["silent", "closes", "ssh-banner"])
def test_a_port_that_is_not_a_dask_scheduler(pair, tmp_path, cli_run, fast_timeout, server, needle):
    out = tmp_path / "o.tif"
    t0 = time.monotonic()
    assert_cli_error(cli_run, fuse_argv(pair, out, server.address), server.address, needle, output=out)
    assert time.monotonic() - t0 < 10 * TIMEOUT_S + 5


def test_a_refused_port_fails_at_once(pair, tmp_path, cli_run):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "o.tif"
    t0 = time.monotonic()
    assert_cli_error(cli_run, fuse_argv(pair, out, address), f"cannot reach the Dask scheduler {address}", output=out)
    assert time.monotonic() - t0 < 5  # Dask alone retried for 30 s


def test_the_timeout_is_a_parameter(server):
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match="within 0.5 s"):
        dist.open_cluster(server.address, timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_an_address_without_a_port_is_an_input_error():
    with pytest.raises(InputError, match="has no host:port"):
        dist.probe_scheduler("tcp://127.0.0.1", 1.0)
