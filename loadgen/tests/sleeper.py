"""A slow HTTP server for tests: one thread, one selector loop, 1 ms asleep per request, so
requests are served one at a time (about 1,000/s) and a generator's connections all stay busy.

    python sleeper.py [PORT [HOST]]    (PORT 0, the default: any free one; HOST 127.0.0.1)

Prints the port it listens on, then serves until killed. Used by the verdict corpus (a
slow server, on loopback and on a lab host) and by the generator's timing test.
"""

import selectors
import socket
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n"


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    sel = selectors.DefaultSelector()
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(512)
    lst.setblocking(False)
    sel.register(lst, selectors.EVENT_READ)
    print(lst.getsockname()[1], flush=True)
    pending: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if s is lst:
                c, _ = lst.accept()
                c.setblocking(True)
                sel.register(c, selectors.EVENT_READ)
                pending[c] = b""
                continue
            try:
                data = s.recv(65536)
            except OSError:  # reset by the load generator at its end
                data = b""
            if not data:
                sel.unregister(s)
                pending.pop(s, None)
                s.close()
                continue
            buf = pending[s] + data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                time.sleep(0.001)
                try:
                    s.sendall(RESPONSE)
                except OSError:
                    break
            pending[s] = buf


if __name__ == "__main__":
    main()
