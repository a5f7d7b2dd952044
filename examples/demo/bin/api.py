#!/usr/bin/env python3
"""A toy API server: GET /health, GET /orders (publishes a job to the queue)."""
import http.server, json, os, socket, sys

PORT = int(os.environ.get("API_PORT", "7380"))
QUEUE = os.environ["QUEUE_ADDR"]

def publish(msg):
    host, port = QUEUE.split(":")
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(f"PUB jobs {msg}\n".encode())
        return s.recv(16).strip() == b"OK"

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, code = {"status": "ok"}, 200
        elif self.path == "/orders":
            body, code = {"queued": publish("order")}, 200
        else:
            body, code = {"error": "not found"}, 404
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(json.dumps({"level": "info", "msg": fmt % args, "path": self.path}), flush=True)

print(f"api: listening on http://127.0.0.1:{PORT}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
