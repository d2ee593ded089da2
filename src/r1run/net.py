"""Listening addresses for the servers r1run starts (llama-server, the RPC worker)."""

from __future__ import annotations

import errno
import ipaddress
import socket

from r1run.errors import BadInput


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int, *, in_use_hint: str) -> None:
    """BadInput, before anything starts, when host:port cannot be listened on (bad port, unknown host, in use)."""
    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port} is outside 1-65535", "give a port from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BadInput(f"--host {host!r} does not resolve ({exc.strerror})",
                       "give an address of this machine, e.g. 127.0.0.1 or its LAN address") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the servers set it too: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, 48):  # 48: EADDRINUSE on macOS
                raise BadInput(f"port {port} on {host} is already in use", in_use_hint) from None
            raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror}",
                           "give an address of this machine with --host") from None
