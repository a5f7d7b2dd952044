// Component tests of the dashboard page (test/dom/: webview/src/main.ts in a simulated DOM, happy-dom).
// Run by `npm run test:dom` and by ./scripts/test. Pure logic stays in node:test (test/unit, ../webview/test).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/dom/**/*.test.ts"],
    environment: "happy-dom",
  },
});
