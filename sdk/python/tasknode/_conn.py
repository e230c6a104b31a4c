"""One connection to a node of the fleet, speaking the line protocol.

Every request is one line; every answer is one JSON line. A large body (``PUT``, ``DONE …
PUT``, a large ``RESULT``) travels as exactly the number of raw bytes its line announces.
"""

import json
import random
import socket
import ssl

CHUNK = 256 * 1024


class ProtocolError(Exception):
    """The node refused a request: ``code`` is its error code (``unknown_kind``, ...)."""

    def __init__(self, code, message, line=None):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.line = line or {}


class ConnectionLost(Exception):
    """The connection ended (or no node of the list could be reached)."""


def parse_servers(servers):
    """``"a:7001,b:7002"`` or a list of ``host:port`` strings, as (host, port) pairs."""
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s.strip()]
    out = []
    for s in servers:
        host, _, port = s.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"`{s}` is not host:port")
        out.append((host, int(port)))
    if not out:
        raise ValueError("no servers given")
    return out


def tls_context(tls):
    """``None``/``False``: plain TCP; ``True``: TLS with the system's CAs; a path: TLS
    trusting that CA file; an ``ssl.SSLContext``: as given."""
    if not tls:
        return None
    if isinstance(tls, ssl.SSLContext):
        return tls
    if tls is True:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(tls))


class Connection:
    """A connection to the first node of ``servers`` that answers (trying them in turn
    from ``start``), authenticated with ``token``."""

    def __init__(self, servers, token=None, tls=None, timeout=30.0, start=0):
        self.servers = parse_servers(servers)
        self.token = token
        self.tls = tls_context(tls)
        self.timeout = timeout
        self.sock = None
        self.buf = bytearray()
        self.server = None
        errors = []
        n = len(self.servers)
        for i in range(n):
            host, port = self.servers[(start + i) % n]
            try:
                self._open(host, port)
                self.server = f"{host}:{port}"
                break
            except (OSError, ProtocolError) as e:
                errors.append(f"{host}:{port}: {e}")
                self.close()
        if self.sock is None:
            raise ConnectionLost("no node answered: " + "; ".join(errors))

    def _open(self, host, port):
        sock = socket.create_connection((host, port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buf = bytearray()
        if self.token:
            answer = self.request("AUTH " + self.token)
            if "error" in answer:
                raise ProtocolError(answer["error"], answer.get("message", ""), answer)

    def settimeout(self, seconds):
        if self.sock is not None:
            self.sock.settimeout(seconds)

    def send(self, data):
        if self.sock is None:
            raise ConnectionLost("not connected")
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(str(e)) from e

    def send_line(self, line):
        self.send(line.encode() + b"\n")

    def send_file(self, f, size, progress=None):
        """Send exactly ``size`` bytes read from file object ``f``."""
        left = size
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise ValueError(f"the body ended {left} bytes short of {size}")
            self.send(chunk)
            left -= len(chunk)
            if progress:
                progress(size - left, size)

    def _fill(self):
        try:
            data = self.sock.recv(CHUNK)
        except socket.timeout:
            raise
        except OSError as e:
            raise ConnectionLost(str(e)) from e
        if not data:
            raise ConnectionLost("the node closed the connection")
        self.buf += data

    def read_line(self):
        """The next line, as JSON."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return json.loads(line)
            self._fill()

    def read_into(self, size, out):
        """Exactly ``size`` raw bytes, written to file object ``out``."""
        left = size
        while left > 0:
            if not self.buf:
                self._fill()
            take = min(left, len(self.buf))
            out.write(bytes(self.buf[:take]))
            del self.buf[:take]
            left -= take

    def request(self, line):
        self.send_line(line)
        return self.read_line()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def backoff(attempt, base=0.2, cap=10.0):
    """Seconds to wait before reconnecting after ``attempt`` failures (with jitter)."""
    return min(cap, base * (2 ** min(attempt, 10))) * (0.5 + random.random() / 2)
