"""The service's HTTP socket is bound before anything else starts (Ray then cannot take its port)."""

from __future__ import annotations

import socket

import pytest
from trainbox_server.__main__ import bind


def test_port_zero_binds_a_free_port_that_no_one_else_can_take() -> None:
    with bind("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))


def test_a_port_already_held_is_refused_with_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            bind("127.0.0.1", port)
