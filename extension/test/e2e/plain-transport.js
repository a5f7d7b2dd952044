// window.stewardTransport for the plain bridge (webview/src/bridge.ts), over functions a Playwright test or
// benchmark exposes to the page: __stewardRequest(method, params) → Promise of the result as JSON text, __stewardAction(name, args).
// Notifications come in through window.__stewardNotify(n), called by the test (page.evaluate). Served as a
// nonce'd script by plainHost.mjs, before dashboard.js.
"use strict";
(() => {
  const handlers = [];
  window.__stewardNotify = (n) => {
    for (const h of handlers) h(n);
  };
  window.stewardTransport = {
    request: async (method, params) => JSON.parse(await window.__stewardRequest(method, params)),
    subscribe: (onNotification) => {
      handlers.push(onNotification);
    },
    action: (name, args) => {
      void window.__stewardAction(name, args ?? {});
    },
  };
})();
