// Where the daemon is, how long to wait before reconnecting, what the user is told.
import { test } from "node:test";
import assert from "node:assert/strict";
import { disconnectedText, reconnectDelay, resolveHome, socketPath } from "../../src/logic/connection";

test("home: setting, then STEWARD_HOME, then XDG_DATA_HOME, then ~/.local/share (as protocol/src/paths.rs)", () => {
  assert.equal(resolveHome("/opt/s", { STEWARD_HOME: "/x" }, "linux", "/home/u"), "/opt/s");
  assert.equal(resolveHome("~/st", {}, "linux", "/home/u"), "/home/u/st");
  assert.equal(resolveHome("  ", { STEWARD_HOME: "/x" }, "linux", "/home/u"), "/x");
  assert.equal(resolveHome("", { XDG_DATA_HOME: "/xdg", HOME: "/home/u" }, "linux", "/home/u"), "/xdg/steward");
  assert.equal(resolveHome("", { XDG_DATA_HOME: "rel", HOME: "/home/u" }, "linux", "/home/u"), "/home/u/.local/share/steward");
  assert.equal(resolveHome("", { HOME: "/Users/u" }, "darwin", "/Users/u"), "/Users/u/Library/Application Support/Steward");
  assert.equal(resolveHome("", {}, "linux", undefined), undefined);
  assert.equal(socketPath("/h"), "/h/run/steward.sock");
});

test("reconnect delay doubles from 250 ms to a 10 s ceiling, with ±20 % jitter", () => {
  assert.equal(reconnectDelay(0, 0.5), 250);
  assert.equal(reconnectDelay(1, 0.5), 500);
  assert.equal(reconnectDelay(3, 0.5), 2000);
  assert.equal(reconnectDelay(6, 0.5), 10_000);
  assert.equal(reconnectDelay(60, 0.5), 10_000);
  assert.equal(reconnectDelay(0, 0), 200);
  assert.equal(reconnectDelay(0, 0.999_999), 300);
});

test("disconnected states say what is wrong and what to do", () => {
  assert.match(disconnectedText({ kind: "stopped", retryInMs: 2500 }).text, /not running/);
  assert.match(disconnectedText({ kind: "stopped", retryInMs: 2500 }).tooltip, /Click to start it.*reconnect in 3 s/s);
  const nf = disconnectedText({ kind: "notFound", binary: "steward", detail: "spawn steward ENOENT" });
  assert.match(nf.text, /not found/);
  assert.match(nf.tooltip, /steward\.path/);
  assert.match(disconnectedText({ kind: "connecting" }).text, /sync~spin/);
});
