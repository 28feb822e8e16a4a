// The console's shell: session, navigation (hash routes) and the live feed.

import { Session } from "./api.js";
import { clear, h } from "./dom.js";
import { LiveFeed } from "./live.js";
import { loginPage } from "./pages/login.js";
import { alertsPage } from "./pages/alerts.js";
import { customersPage } from "./pages/customers.js";
import { customerPage } from "./pages/customer.js";
import { modelsPage } from "./pages/models.js";
import { dashboardPage } from "./pages/dashboard.js";
import { settingsPage } from "./pages/settings.js";
import { importsPage } from "./pages/imports.js";
import { cohortsPage } from "./pages/cohorts.js";

const ROUTES = [
  [/^#\/dashboard$/, dashboardPage, "Dashboard"],
  [/^#\/alerts$/, alertsPage, "Alerts"],
  [/^#\/customers(?:\?(.*))?$/, customersPage, "Customers"],
  [/^#\/customers\/(.+)$/, customerPage, "Customer"],
  [/^#\/models$/, modelsPage, "Models"],
  [/^#\/imports$/, importsPage, "Imports"],
  [/^#\/cohorts$/, cohortsPage, "Cohorts"],
  [/^#\/settings$/, settingsPage, "Settings"],
];
const LIVE_LABELS = {
  live: "Live: connected",
  connecting: "Live: connecting",
  reconnecting: "Live: reconnecting",
  offline: "Live: offline",
};

const session = new Session();
const live = new LiveFeed(session);
const context = { session, live, cleanup: [] };

function main() {
  return document.getElementById("main");
}

function showShell(signedIn) {
  document.getElementById("topbar").hidden = !signedIn;
  const who = document.getElementById("who");
  who.textContent = signedIn && session.user
    ? `${session.user.email} (${session.user.role}, ${session.user.tenant_name})`
    : "";
}

/** ``focus``: after a navigation, move the focus to the new page's heading (screen readers
 * announce it; keyboard users continue from there). */
async function render({ focus = false } = {}) {
  for (const undo of context.cleanup.splice(0)) undo();
  const hash = location.hash || "#/alerts";
  if (!session.signedIn) {
    showShell(false);
    document.title = "Sign in · Churn console";
    loginPage(main(), session, () => {
      live.start();
      if (!location.hash || location.hash === "#/login") location.hash = "#/alerts";
      else render();
    });
    return;
  }
  showShell(true);
  for (const link of document.querySelectorAll("#nav a")) {
    if (hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, page, title] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    document.title = `${title} · Churn console`;
    const container = clear(main());
    try {
      await page(container, context,
        ...match.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part))));
      const heading = container.querySelector("h1");
      if (focus && heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    } catch (error) {
      container.append(h("p", { class: "error", role: "alert" }, `Could not load: ${error.message}`));
    }
    return;
  }
  location.hash = "#/alerts";
}

function boot() {
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await session.logout();
    location.hash = "#/login";
    render();
  });
  live.onStatus((status) => {
    const element = document.getElementById("live-status");
    element.textContent = LIVE_LABELS[status] || status;
    element.dataset.status = status;
  });
  session.onToken((token) => {
    if (token === null) render();
  });
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#/")) render({ focus: true });
  });
  session.restore().then((restored) => {
    if (restored) live.start();
    render();
  });
}

boot();
