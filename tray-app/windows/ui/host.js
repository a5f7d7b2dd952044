// The tray's transport for the dashboard bundle (webview/), loaded by its host page (webview/host.html):
// `window.stewardTransport`, the PlainBridge's transport, over the windows process's one command (`call`,
// relayed to the tray) and its events. The page never reaches the daemon itself: `daemon_request` relays only
// the dashboard's RELAYED list (read from webview/src/bridge.ts) and the tray's own reads.
(function () {
  "use strict";
  const tauri = window.__TAURI__;
  const invoke = (cmd, args) => tauri.core.invoke("call", { cmd, args: args ?? null });
  const handlers = [];
  void tauri.event.listen("steward://notification", (e) => {
    for (const h of handlers) h(e.payload);
  });
  window.stewardTransport = {
    request(method, params) {
      return invoke("daemon_request", { method, params: params ?? null }).catch((e) => {
        throw new Error(String(e));
      });
    },
    subscribe(onNotification) {
      handlers.push(onNotification);
    },
    action(name, args) {
      invoke("host_action", { name, args: args ?? null }).catch((e) => console.error(String(e)));
    },
  };
  // The smoke test (STEWARD_TRAY_SMOKE_FILE) reads what the page shows.
  void invoke("host_info").then((info) => {
    if (!info.smoke) return;
    let pending;
    const report = () => {
      pending = undefined;
      void invoke("smoke_report", { text: document.body.innerText });
    };
    new MutationObserver(() => {
      if (!pending) pending = setTimeout(report, 100);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
    report();
  });
})();
