"""A TCP proxy in front of PostgreSQL that loses the connection at COMMIT.

Everything is forwarded both ways until the client sends COMMIT.  The COMMIT still
reaches the server, and the proxy waits for the server's answer (CommandComplete
``COMMIT`` then ReadyForQuery), so the transaction really is committed; then it closes
both sides without passing that answer on.  The client is left with a COMMIT sent and
a connection closed before any reply: exactly a connection lost while committing.
"""

import socket
import struct
import threading

# Requests sent before the startup message, answered by one byte ('S', 'G' or 'N').
_PRE_STARTUP = (80877103, 80877104)  # SSLRequest, GSSENCRequest


def _read_exact(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class CommitCutter:
    """``with CommitCutter(host, port) as proxy:`` connect to 127.0.0.1:``proxy.port``.

    ``proxy.cut`` is set once a COMMIT was answered by the server and the answer dropped.
    """

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.threads = []
        self.sockets = []

    def __enter__(self):
        self._start(self._accept)
        return self

    def __exit__(self, *exc):
        self.listener.close()
        for sock in self.sockets:
            sock.close()

    def _start(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self):
        while True:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            committing = threading.Event()
            self._start(self._client_to_server, client, server, committing)
            self._start(self._server_to_client, server, client, committing)

    def _client_to_server(self, client, server, committing):
        try:
            while True:
                size, = struct.unpack('!i', _read_exact(client, 4))
                body = _read_exact(client, size - 4)
                server.sendall(struct.pack('!i', size) + body)
                if struct.unpack('!i', body[:4])[0] not in _PRE_STARTUP:
                    break
            while True:
                kind = _read_exact(client, 1)
                size, = struct.unpack('!i', _read_exact(client, 4))
                body = _read_exact(client, size - 4)
                # Simple query 'Q' or the extended protocol's Parse 'P' of the statement.
                if kind in (b'Q', b'P') and b'COMMIT' in body.upper() and not self.cut.is_set():
                    committing.set()
                server.sendall(kind + struct.pack('!i', size) + body)
        except (EOFError, OSError):
            return

    def _server_to_client(self, server, client, committing):
        swallowed = b''
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    return
                if not committing.is_set():
                    client.sendall(data)
                    continue
                # The answer to COMMIT: kept from the client.  The client waits for each
                # answer before its next command, so nothing older is in it.
                swallowed += data
                if b'COMMIT\x00' in swallowed and b'Z\x00\x00\x00\x05' in swallowed:
                    self.cut.set()
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    server.close()
                    return
        except OSError:
            return
