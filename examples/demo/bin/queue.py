#!/usr/bin/env python3
"""A toy message broker: clients send `PUB topic msg` or `POP topic`; it checks the db at start."""
import collections, os, signal, socket, socketserver, sys

PORT = int(os.environ.get("QUEUE_PORT", "7302"))
DB = os.environ["DB_ADDR"]
queues = collections.defaultdict(collections.deque)

host, port = DB.split(":")
with socket.create_connection((host, int(port)), timeout=2) as s:
    s.sendall(b"PING\n")
    if s.recv(16).strip() != b"PONG":
        print("queue: ERROR db did not answer PING", file=sys.stderr, flush=True)
        sys.exit(1)
print(f"queue: connected to db at {DB}", flush=True)

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode(errors="replace").split(maxsplit=2)
            if parts[:1] == ["PUB"] and len(parts) == 3:
                queues[parts[1]].append(parts[2])
                self.wfile.write(b"OK\n")
            elif parts[:1] == ["POP"] and len(parts) == 2:
                q = queues[parts[1]]
                self.wfile.write(((q.popleft() if q else "") + "\n").encode())
            elif parts[:1] == ["PING"]:
                self.wfile.write(b"PONG\n")
            else:
                self.wfile.write(b"ERR\n")

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with Server(("127.0.0.1", PORT), Handler) as srv:
    print(f"queue: ready on 127.0.0.1:{PORT}", flush=True)
    srv.serve_forever()
