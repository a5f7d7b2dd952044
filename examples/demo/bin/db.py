#!/usr/bin/env python3
"""A toy key-value "database": a TCP server speaking one line per command (PING, SET k v, GET k)."""
import os, socketserver, sys, time

PORT = int(os.environ.get("DB_PORT", "7301"))
store = {}

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode(errors="replace").split()
            if not parts:
                continue
            cmd = parts[0].upper()
            if cmd == "PING":
                self.wfile.write(b"PONG\n")
            elif cmd == "SET" and len(parts) >= 3:
                store[parts[1]] = " ".join(parts[2:])
                self.wfile.write(b"OK\n")
            elif cmd == "GET" and len(parts) == 2:
                self.wfile.write((store.get(parts[1], "") + "\n").encode())
            else:
                self.wfile.write(b"ERR unknown command\n")

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

print(f"db: loading data files", flush=True)
time.sleep(0.3)  # pretend to replay a journal
with Server(("127.0.0.1", PORT), Handler) as srv:
    print(f"db: ready, listening on 127.0.0.1:{PORT}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
