// Fills webview/host.html: the dashboard's host page outside VS Code, under the same strict CSP as the VS Code
// webview (default-src 'none', nonce'd scripts). Used by the plain-bridge end-to-end test and the dashboard
// benchmark; the tray's Tauri windows fill the same template themselves (tray-app/windows/src/lib.rs).
//
//   import { hostHtml } from "../webview/host.mjs";
//   const html = hostHtml({ base: "/", transport: "/transport.js" });   // a fresh nonce each call

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The template, read once. */
export const TEMPLATE = fs.readFileSync(path.join(here, "host.html"), "utf8");

const attr = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

/**
 * The host page.
 * @param {object} [o]
 * @param {string} [o.nonce] the script nonce (default: 16 random bytes, base64); must be base64
 * @param {string} [o.base] URL prefix of dashboard.js / dashboard.css (default "")
 * @param {string} [o.transport] URL of a script that defines window.stewardTransport (default: none)
 * @param {string} [o.connect] CSP connect-src sources (default "'none'")
 * @returns {string}
 */
export function hostHtml({ nonce = crypto.randomBytes(16).toString("base64"), base = "", transport, connect = "'none'" } = {}) {
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(nonce)) throw new Error(`hostHtml: nonce must be base64, got ${JSON.stringify(nonce)}`);
  if (/[;,"'<>]/.test(connect.replace(/'(none|self)'/g, ""))) {
    throw new Error(`hostHtml: connect must be CSP source expressions (no ';'), got ${JSON.stringify(connect)}`);
  }
  const tag = transport ? `<script nonce="${nonce}" src="${attr(transport)}"></script>` : "";
  return TEMPLATE.replace(/<!--[\s\S]*?-->\n/, "")
    .replaceAll("{{TRANSPORT}}", tag)
    .replaceAll("{{NONCE}}", nonce)
    .replaceAll("{{BASE}}", attr(base))
    .replaceAll("{{CONNECT}}", connect);
}
