// The dashboard: GET /v1/dashboard/summary (customers by risk level, the score histogram,
// customers that moved up, revenue at risk, alerts by status; computed by the services from
// stored data) and GET /v1/dashboard/trend?days=90, plus the latest high-risk alerts.
// Refreshes after live scores and alerts, at most every 10 s.

import { histogram, trendChart } from "../charts.js";
import { clear, formatTime, h, riskBadge } from "../dom.js";

const TREND_DAYS = 90;
const STATUSES = [["open", "Open"], ["acknowledged", "Acknowledged"], ["snoozed", "Snoozed"], ["resolved", "Resolved"]];
const LEVELS = [["high", "High risk"], ["medium", "Medium risk"], ["low", "Low risk"]];

function stat(label, value, id, hint) {
  return h("div", { class: "stat card" }, h("span", { class: "stat-label" }, label),
    h("strong", { class: "stat-value", id }, value),
    hint ? h("span", { class: "hint" }, hint) : null);
}

function money(value) {
  return Math.round(value).toLocaleString();
}

/** The trend's numbers as a table (the chart's text alternative), newest day first. */
function trendTable(items) {
  return h("details", {}, h("summary", {}, "The trend as a table"),
    h("div", { class: "table-wrap" }, h("table", { class: "data", id: "trend-table" },
      h("caption", { class: "visually-hidden" }, "Customers per risk level at the end of each day"),
      h("thead", {}, h("tr", {}, ["Day", "High", "Medium", "Low", "Moved up", "Open alerts"].map(
        (label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, items.slice().reverse().map((day) => h("tr", {},
        h("th", { scope: "row" }, day.date),
        h("td", { class: "num" }, day.risk_levels.high.toLocaleString()),
        h("td", { class: "num" }, day.risk_levels.medium.toLocaleString()),
        h("td", { class: "num" }, day.risk_levels.low.toLocaleString()),
        h("td", { class: "num" }, day.moved_up.toLocaleString()),
        h("td", { class: "num" }, day.alerts.open.toLocaleString())))))));
}

export async function dashboardPage(container, { session, live, cleanup }) {
  const content = h("div", { class: "dashboard" });
  container.append(h("h1", {}, "Dashboard"), content);

  async function load() {
    const [summary, trend, recent] = await Promise.all([
      session.get("/v1/dashboard/summary"),
      session.get("/v1/dashboard/trend", { days: TREND_DAYS }),
      session.get("/v1/alerts", { risk_level: "high", limit: 8 }),
    ]);
    const days = trend.items.map((day) => day.date);
    const series = LEVELS.map(([level, label]) => ({
      name: label, className: `series-${level}`, values: trend.items.map((day) => day.risk_levels[level]),
    }));
    clear(content,
      h("section", { "aria-labelledby": "risk-title" },
        h("h2", { id: "risk-title" }, "Customers by risk level"),
        h("div", { class: "stats" },
          stat("High risk", summary.risk_levels.high.toLocaleString(), "count-high"),
          stat("Medium risk", summary.risk_levels.medium.toLocaleString(), "count-medium"),
          stat("Low risk", summary.risk_levels.low.toLocaleString(), "count-low"),
          stat("Not scored yet", summary.risk_levels.unscored.toLocaleString(), "count-unscored"),
          stat("Moved up a level (7 days)", summary.moved_up_last_7_days.toLocaleString(), "moved-up"),
          stat("Revenue at risk", money(summary.revenue_at_risk), "revenue-at-risk",
            "Σ churn probability × the customer's spend in the last 90 days"),
        ),
      ),
      h("section", { "aria-labelledby": "trend-title" },
        h("h2", { id: "trend-title" }, `The last ${TREND_DAYS} days`),
        trendChart(days, series, `Customers per risk level at the end of each of the last ${TREND_DAYS} days`),
        trendTable(trend.items),
      ),
      h("section", { "aria-labelledby": "distribution-title" },
        h("h2", { id: "distribution-title" }, "Score distribution"),
        histogram(summary.score_histogram,
          `Customers per churn probability band of ${100 / summary.score_histogram.length} points`),
      ),
      h("section", { "aria-labelledby": "alerts-status-title" },
        h("h2", { id: "alerts-status-title" }, "Alerts by status"),
        h("div", { class: "stats" }, STATUSES.map(([status, label]) =>
          stat(label, summary.alerts[status].toLocaleString(), `alerts-${status}`))),
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
