// "status" round trips against one supervisor, from Node: N sequential requests after a warm-up, then N
// requests with 8 in flight. Prints JSON {p50_ms, p90_ms, p99_ms, max_ms, quantiles_ms[101], inflight8_per_s}.
//
//   node bench/peers.d/rpc.mjs steward SOCKET N      steward/status over the LSP-framed Unix socket
//   node bench/peers.d/rpc.mjs pm2 PM2_HOME N        pm2's programmatic API, pm2.list() (NODE_PATH must hold pm2)
//   node bench/peers.d/rpc.mjs supervisord SOCKET N  XML-RPC supervisor.getAllProcessInfo over HTTP on the socket
import net from "node:net";
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";

const [tool, target, nArg] = process.argv.slice(2);
const n = Number(nArg || 1000);

async function stewardClient(sock) {
  const s = net.connect(sock);
  await new Promise((ok, err) => { s.once("connect", ok); s.once("error", err); });
  let buf = Buffer.alloc(0);
  const waiting = new Map();
  let next = 0;
  s.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const h = buf.indexOf("\r\n\r\n");
      if (h < 0) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, h).toString())[1]);
      if (buf.length < h + 4 + len) return;
      const msg = JSON.parse(buf.subarray(h + 4, h + 4 + len).toString());
      buf = buf.subarray(h + 4 + len);
      if (msg.id !== undefined && !msg.method && waiting.has(msg.id)) {
        const [ok, err] = waiting.get(msg.id);
        waiting.delete(msg.id);
        msg.error ? err(new Error(JSON.stringify(msg.error))) : ok(msg.result);
      }
    }
  });
  const send = (m) => { const b = Buffer.from(JSON.stringify(m)); s.write(`Content-Length: ${b.length}\r\n\r\n`); s.write(b); };
  const call = (method, params) => new Promise((ok, err) => {
    const id = ++next;
    waiting.set(id, [ok, err]);
    send({ jsonrpc: "2.0", id, method, params });
  });
  await call("initialize", { capabilities: {} });
  send({ jsonrpc: "2.0", method: "initialized", params: {} });
  return { status: () => call("steward/status", {}), close: () => s.end() };
}

async function pm2Client() {
  const require = createRequire(path.join(process.env.NODE_PATH, "noop.js"));
  const pm2 = require("pm2");
  await new Promise((ok, err) => pm2.connect((e) => (e ? err(e) : ok())));
  return {
    status: () => new Promise((ok, err) => pm2.list((e, l) => (e ? err(e) : ok(l)))),
    close: () => pm2.disconnect(),
  };
}

async function supervisordClient(sock) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const body = '<?xml version="1.0"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>';
  return {
    status: () => new Promise((ok, err) => {
      const req = http.request({ socketPath: sock, path: "/RPC2", method: "POST", agent,
        headers: { "Content-Type": "text/xml", "Content-Length": Buffer.byteLength(body) } }, (res) => {
        let d = "";
        res.on("data", (c) => (d += c));
        res.on("end", () => (res.statusCode === 200 && d.includes("methodResponse") && !d.includes("<fault>") ? ok(d) : err(new Error(`HTTP ${res.statusCode}: ${d.slice(0, 200)}`))));
      });
      req.on("error", err);
      req.end(body);
    }),
    close: () => agent.destroy(),
  };
}

const c = tool === "steward" ? await stewardClient(target) : tool === "pm2" ? await pm2Client() : await supervisordClient(target);
for (let i = 0; i < Math.min(200, n); i++) await c.status();
const lat = [];
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  await c.status();
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
}
const t0 = process.hrtime.bigint();
let issued = 0;
async function worker() { while (issued < n) { issued++; await c.status(); } }
await Promise.all(Array.from({ length: 8 }, worker));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
lat.sort((a, b) => a - b);
const q = (p) => { const pos = p * (lat.length - 1); const lo = Math.floor(pos), hi = Math.ceil(pos); return lat[lo] + (lat[hi] - lat[lo]) * (pos - lo); };
const r3 = (x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({ n, p50_ms: r3(q(0.5)), p90_ms: r3(q(0.9)), p99_ms: r3(q(0.99)), max_ms: r3(lat[lat.length - 1]),
  quantiles_ms: Array.from({ length: 101 }, (_, i) => r3(q(i / 100))), inflight8_per_s: Math.round(n / secs) }));
c.close();
process.exit(0);
