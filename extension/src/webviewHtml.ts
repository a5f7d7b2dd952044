// The HTML shell shared by Steward's webviews: a local script and stylesheet, a strict Content Security
// Policy (nothing but our own files; scripts only with this page's nonce), theme colours through VS Code's
// CSS variables.

import * as crypto from "node:crypto";
import * as vscode from "vscode";

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, "out", "webview"), vscode.Uri.joinPath(extensionUri, "media")],
  };
}

export function webviewHtml(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  opts: { title: string; script: string; style: string; body: string; styleInOut?: boolean },
): string {
  const nonce = crypto.randomBytes(16).toString("base64");
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "out", "webview", opts.script));
  const style = webview.asWebviewUri(
    opts.styleInOut
      ? vscode.Uri.joinPath(extensionUri, "out", "webview", opts.style)
      : vscode.Uri.joinPath(extensionUri, "media", opts.style),
  );
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `img-src ${webview.cspSource}`,
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>${escapeHtml(opts.title)}</title>
</head>
<body>
${opts.body}
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}
