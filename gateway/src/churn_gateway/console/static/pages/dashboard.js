// The dashboard, computed in the browser from the public list endpoints (pages of customers and
// alerts, up to the caps below, said on the page). Refreshes after live scores and alerts.

import { histogram } from "../charts.js";
import { clear, formatTime, h, riskBadge } from "../dom.js";

const CUSTOMER_PAGE = 500;
const CUSTOMER_CAP = 10_000;
const ALERT_PAGE = 200;
const ALERT_CAP = 2_000;
const BINS = 20;
const STATUSES = [["open", "Open"], ["acknowledged", "Acknowledged"], ["snoozed", "Snoozed"], ["resolved", "Resolved"]];

async function collect(session, path, query, pageSize, cap) {
  const items = [];
  let cursor;
  do {
    const page = await session.get(path, { ...query, limit: pageSize, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < cap);
  return { items, complete: !cursor };
}

function stat(label, value, id) {
  return h("div", { class: "stat card" }, h("span", { class: "stat-label" }, label),
    h("strong", { class: "stat-value", id }, value));
}

export async function dashboardPage(container, { session, live, cleanup }) {
  const content = h("div", { class: "dashboard" });
  container.append(h("h1", {}, "Dashboard"), content);

  async function load() {
    const [customers, recent, ...alertCounts] = await Promise.all([
      collect(session, "/v1/customers", { sort: "-churn_probability" }, CUSTOMER_PAGE, CUSTOMER_CAP),
      session.get("/v1/alerts", { risk_level: "high", limit: 8 }),
      ...STATUSES.map(([status]) => collect(session, "/v1/alerts", { status }, ALERT_PAGE, ALERT_CAP)),
    ]);
    const byLevel = { high: 0, medium: 0, low: 0, unscored: 0 };
    const bins = new Array(BINS).fill(0);
    for (const customer of customers.items) {
      byLevel[customer.risk_level || "unscored"] += 1;
      if (typeof customer.churn_probability === "number") {
        bins[Math.min(BINS - 1, Math.floor(customer.churn_probability * BINS))] += 1;
      }
    }
    const plus = (result) => (result.complete ? "" : "+");
    clear(content,
      h("section", { "aria-labelledby": "risk-title" },
        h("h2", { id: "risk-title" }, "Customers by risk level"),
        h("div", { class: "stats" },
          stat("High risk", `${byLevel.high}${plus(customers)}`, "count-high"),
          stat("Medium risk", `${byLevel.medium}${plus(customers)}`, "count-medium"),
          stat("Low risk", `${byLevel.low}${plus(customers)}`, "count-low"),
          stat("Not scored yet", `${byLevel.unscored}${plus(customers)}`, "count-unscored"),
        ),
        customers.complete ? null : h("p", { class: "hint" },
          `Counted over the ${customers.items.length.toLocaleString()} customers with the highest risk.`),
      ),
      h("section", { "aria-labelledby": "distribution-title" },
        h("h2", { id: "distribution-title" }, "Score distribution"),
        histogram(bins, `Customers per churn probability band of ${100 / BINS} points`),
      ),
      h("section", { "aria-labelledby": "alerts-status-title" },
        h("h2", { id: "alerts-status-title" }, "Alerts by status"),
        h("div", { class: "stats" }, STATUSES.map(([status, label], index) =>
          stat(label, `${alertCounts[index].items.length}${plus(alertCounts[index])}`, `alerts-${status}`))),
      ),
      h("section", { "aria-labelledby": "recent-title" },
        h("h2", { id: "recent-title" }, "Recent high-risk alerts"),
        recent.items.length
          ? h("ul", { class: "recent" }, recent.items.map((alert) => h("li", {},
            h("a", { href: `#/customers/${encodeURIComponent(alert.customer_id)}` }, alert.customer_id), " ",
            riskBadge(alert.risk_level, alert.churn_probability), " ",
            h("span", { class: "hint" }, `${alert.status}, ${formatTime(alert.created_at)}`))))
          : h("p", {}, "No high-risk alerts."),
      ),
      h("p", { class: "hint" }, "Revenue at risk and the 90-day trend need the dashboard API (not in this version)."),
    );
  }

  // At most one refresh every 10 s, however fast the feed is.
  let timer = null;
  const soon = () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      load().catch(() => {});
    }, 10_000);
  };
  cleanup.push(live.on("churn_alert", soon), live.on("alert_updated", soon), live.on("score_update", soon),
    () => clearTimeout(timer));
  await load();
}
