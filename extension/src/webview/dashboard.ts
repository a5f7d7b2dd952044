// The Dashboard page (runs in the webview, bundled to out/webview/dashboard.js): live module states, redrawn
// from the `state` messages the extension sends on every change.

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void };
const vscode = acquireVsCodeApi();

interface ModuleRow { name: string; state: string; label: string; restarts: number; health: string | null }
interface ProjectRow { path: string; name: string; profile: string | null; up: boolean; modules: ModuleRow[] }

const app = document.getElementById("app") as HTMLElement;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render(connection: string, overall: string, projects: ProjectRow[]): void {
  const out: HTMLElement[] = [];
  if (connection !== "connected") {
    out.push(el("p", "muted", connection === "connecting" ? "Connecting to the Steward daemon…" : "The Steward daemon is not connected."));
  } else if (projects.length === 0) {
    out.push(el("p", "muted", "No stack is open."));
  } else {
    out.push(el("p", "overall", overall));
    for (const p of projects) {
      const section = el("section", "project");
      section.append(el("h2", undefined, `${p.name} · ${p.profile ?? "all modules"} · ${p.up ? "up" : "down"}`));
      const table = el("table");
      const head = el("tr");
      for (const h of ["Module", "State", "Restarts"]) head.append(el("th", undefined, h));
      table.append(head);
      for (const m of p.modules) {
        const tr = el("tr", `state-${m.state}${m.health === "unhealthy" ? " unhealthy" : ""}`);
        const name = el("td");
        const link = el("a", "module", m.name);
        link.href = "#";
        link.title = `Logs of ${m.name}`;
        link.addEventListener("click", (e) => {
          e.preventDefault();
          vscode.postMessage({ type: "logs", project: p.path, module: m.name });
        });
        name.append(link);
        const st = el("td", "state");
        st.append(el("span", "dot"), document.createTextNode(m.label));
        tr.append(name, st, el("td", "num", String(m.restarts)));
        tr.dataset.module = m.name;
        tr.dataset.state = m.state;
        table.append(tr);
      }
      section.append(table);
      out.push(section);
    }
  }
  app.replaceChildren(...out);
}

window.addEventListener("message", (ev: MessageEvent) => {
  const m = ev.data as { type: string; connection: string; overall: string; projects: ProjectRow[] };
  if (m.type === "state") render(m.connection, m.overall, m.projects);
});
vscode.postMessage({ type: "ready" });
