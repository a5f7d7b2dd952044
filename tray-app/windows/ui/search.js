// Memory search: results as you type (debounced; an answer to an older query is dropped).
(function () {
  "use strict";
  const invoke = (cmd, args) => window.__TAURI__.core.invoke("call", { cmd, args: args ?? null });
  const q = document.getElementById("q");
  const hits = document.getElementById("hits");
  const count = document.getElementById("count");
  let seq = 0;
  let timer;

  function row(h) {
    const li = document.createElement("li");
    li.className = `hit ${h.kind}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const where = h.module ? `${h.project.split("/").slice(-2, -1)[0] || h.project}/${h.module}` : h.project;
    meta.textContent = `${new Date(h.tsMs).toLocaleString()} · ${h.kind} · ${where}${h.level ? ` · ${h.level}` : ""}`;
    const text = document.createElement("div");
    text.className = "snippet";
    text.textContent = h.snippet;
    li.append(meta, text);
    return li;
  }

  async function search() {
    const mine = ++seq;
    const query = q.value;
    if (!query.trim()) {
      hits.replaceChildren();
      count.textContent = "";
      return;
    }
    try {
      const result = await invoke("search_memory", { query, limit: 50 });
      if (mine !== seq) return;
      hits.replaceChildren(...result.map(row));
      count.textContent = `${result.length} result${result.length === 1 ? "" : "s"}`;
    } catch (e) {
      if (mine !== seq) return;
      hits.replaceChildren();
      count.textContent = String(e);
    }
  }

  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 120);
  });
})();
