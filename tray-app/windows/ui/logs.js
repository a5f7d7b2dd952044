// One module's logs: the last lines, then new ones as they come (a live tail from the daemon).
(function () {
  "use strict";
  const tauri = window.__TAURI__;
  const params = new URLSearchParams(location.search);
  const project = params.get("project") || "";
  const module = params.get("module") || "";
  const pre = document.getElementById("lines");
  const status = document.getElementById("status");
  const MAX = 5000;
  document.getElementById("title").textContent = `${module} — logs`;
  document.title = `Steward — ${module} logs`;
  let subscription;

  function append(lines) {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    for (const l of lines) {
      const div = document.createElement("div");
      div.className = `line ${l.stream}${l.level ? ` ${l.level}` : ""}`;
      div.textContent = `${new Date(l.tsMs).toLocaleTimeString()}  ${l.text}`;
      pre.append(div);
    }
    while (pre.childElementCount > MAX) pre.firstElementChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  void tauri.event.listen("steward://logs", (e) => {
    if (e.payload.subscription === subscription) append(e.payload.lines);
  });
  tauri.core
    .invoke("call", { cmd: "follow_logs", args: { project, module, limit: 500 } })
    .then((r) => {
      subscription = r.subscription;
      append(r.lines);
      status.textContent = "following";
    })
    .catch((e) => (status.textContent = String(e)));
})();
