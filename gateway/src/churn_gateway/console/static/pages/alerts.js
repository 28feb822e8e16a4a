// The alerts inbox: filter, work an alert (acknowledge, assign, snooze, resolve), its history;
// the list follows the live feed.

import { clear, field, formatNumber, formatTime, h, notify, riskBadge, select } from "../dom.js";

const STATUS_OPTIONS = [
  ["open", "Open"], ["acknowledged", "Acknowledged"], ["snoozed", "Snoozed"],
  ["resolved", "Resolved"], ["", "Any status"],
];
const ASSIGNEE_OPTIONS = [["", "Anyone"], ["me", "Assigned to me"], ["none", "Unassigned"]];
const RISK_OPTIONS = [["", "Any risk"], ["high", "High"], ["medium", "Medium"], ["low", "Low"]];
const OUTCOME_OPTIONS = [
  ["retained", "Retained"], ["churned", "Churned"], ["false_alarm", "False alarm"],
];
const SNOOZE_OPTIONS = [["1", "1 hour"], ["24", "1 day"], ["168", "7 days"]];
const KIND_LABELS = { high_risk: "High risk", risk_increase: "Risk increase" };
const STATUS_LABELS = Object.fromEntries(STATUS_OPTIONS);
const OUTCOME_LABELS = Object.fromEntries(OUTCOME_OPTIONS);
const PAGE_SIZE = 50;

export async function alertsPage(container, { session, live, cleanup }) {
  const filters = {
    status: select("status", STATUS_OPTIONS, "open"),
    assignee: select("assignee", ASSIGNEE_OPTIONS, ""),
    risk_level: select("risk_level", RISK_OPTIONS, ""),
  };
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const detail = h("section", { class: "detail card", "aria-labelledby": "alert-detail-title", hidden: true });
  let cursor = null;
  let selected = null;
  let users = [];
  const known = new Set();

  container.append(
    h("h1", {}, "Alerts"),
    h("form", { class: "filters", "aria-label": "Filter alerts" },
      field("Status", filters.status),
      field("Assignee", filters.assignee),
      field("Risk", filters.risk_level),
    ),
    summary,
    h("div", { class: "layout-split" },
      h("div", { class: "table-wrap" },
        h("table", { class: "data", id: "alerts-table" },
          h("caption", { class: "visually-hidden" }, "Alerts, newest first"),
          h("thead", {}, h("tr", {},
            ["Customer", "Risk", "Kind", "Status", "Assignee", "Raised", "Details"].map(
              (label) => h("th", { scope: "col" }, label)),
          )),
          body,
        ),
        more,
      ),
      detail,
    ),
  );

  if (session.can("admin")) {
    session.get("/v1/users", { limit: 200 }).then((page) => {
      users = page.items;
    }).catch(() => {});
  }

  function assigneeLabel(id) {
    if (!id) return "—";
    if (session.user && id === session.user.id) return "Me";
    const user = users.find((candidate) => candidate.id === id);
    return user ? user.email : id;
  }

  function row(alert, isNew) {
    const open = h("button", {
      type: "button", class: "link", "aria-label": `Details of the alert for ${alert.customer_id}`,
      on: { click: () => showDetail(alert.id) },
    }, "Details");
    return h("tr", { class: isNew ? "new" : undefined, dataset: { alertId: alert.id } },
      h("th", { scope: "row" },
        h("a", { href: `#/customers/${encodeURIComponent(alert.customer_id)}` }, alert.customer_id)),
      h("td", {}, riskBadge(alert.risk_level, alert.churn_probability)),
      h("td", {}, KIND_LABELS[alert.kind] || alert.kind),
      h("td", { class: "status" }, STATUS_LABELS[alert.status] || alert.status),
      h("td", {}, assigneeLabel(alert.assignee_id)),
      h("td", {}, formatTime(alert.created_at)),
      h("td", {}, open),
    );
  }

  async function load(append = false) {
    const page = await session.get("/v1/alerts", {
      status: filters.status.value,
      assignee: filters.assignee.value,
      risk_level: filters.risk_level.value,
      limit: PAGE_SIZE,
      cursor: append ? cursor : undefined,
    });
    const rows = page.items.map((alert) => {
      const isNew = known.size > 0 && !known.has(alert.id);
      known.add(alert.id);
      return row(alert, isNew);
    });
    if (append) body.append(...rows);
    else clear(body, rows);
    if (!append && page.items.length === 0) {
      body.append(h("tr", {}, h("td", { colspan: 7 }, "No alerts match these filters.")));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const count = body.querySelectorAll("tr[data-alert-id]").length;
    summary.textContent = `${count}${cursor ? "+" : ""} alert${count === 1 ? "" : "s"} shown`;
  }

  async function act(label, path, payload) {
    try {
      await session.post(path, payload);
      notify(`${label}: done`);
      await Promise.all([load(), showDetail(selected)]);
    } catch (error) {
      notify(`${label} failed: ${error.message}`, "error");
    }
  }

  function actions(alert) {
    if (!session.can("analyst")) {
      return h("p", { class: "hint" }, "Your role can read alerts but not work them.");
    }
    const base = `/v1/alerts/${encodeURIComponent(alert.id)}`;
    const parts = [];
    const buttons = h("div", { class: "actions" });
    if (alert.status === "open") {
      buttons.append(h("button", { type: "button", on: { click: () => act("Acknowledge", `${base}/acknowledge`) } }, "Acknowledge"));
    }
    if (alert.status !== "resolved" && (!session.user || alert.assignee_id !== session.user.id)) {
      buttons.append(h("button", { type: "button", class: "secondary", on: { click: () => act("Take", `${base}/assign`, { user_id: "me" }) } }, "Assign to me"));
    }
    if (alert.status === "resolved" || alert.status === "snoozed") {
      buttons.append(h("button", { type: "button", class: "secondary", on: { click: () => act("Reopen", `${base}/reopen`) } }, "Reopen"));
    }
    parts.push(buttons);
    if (alert.status !== "resolved") {
      if (session.can("admin") && users.length > 0) {
        const who = select("user_id", [["", "Nobody"], ...users.map((user) => [user.id, user.email])], alert.assignee_id || "");
        parts.push(h("form", { class: "inline", on: { submit: (event) => {
          event.preventDefault();
          act("Assign", `${base}/assign`, { user_id: who.value || null });
        } } }, field("Assign to", who), h("button", { type: "submit", class: "secondary" }, "Assign")));
      }
      const hours = select("hours", SNOOZE_OPTIONS, "24");
      parts.push(h("form", { class: "inline", on: { submit: (event) => {
        event.preventDefault();
        const until = new Date(Date.now() + Number(hours.value) * 3600 * 1000).toISOString();
        act("Snooze", `${base}/snooze`, { until });
      } } }, field("Snooze for", hours), h("button", { type: "submit", class: "secondary" }, "Snooze")));
      const outcome = select("outcome", OUTCOME_OPTIONS, "retained");
      const note = h("textarea", { name: "note", rows: 2, maxlength: 1000 });
      parts.push(h("form", { class: "resolve", on: { submit: (event) => {
        event.preventDefault();
        act("Resolve", `${base}/resolve`, { outcome: outcome.value, note: note.value || null });
      } } }, field("Outcome", outcome), field("Note", note), h("button", { type: "submit" }, "Resolve")));
    }
    return h("div", {}, parts);
  }

  // What the user typed or chose in the open alert's forms outlives a refresh of that alert
  // (a live update, someone else's action), and so does the focus: only a newly selected
  // alert starts with blank forms. Without this, a note being typed vanished mid-sentence.
  function markEdited(event) {
    if (event.target.name) event.target.dataset.edited = "true";
  }
  detail.addEventListener("input", markEdited);
  detail.addEventListener("change", markEdited);

  function editedForms() {
    const values = new Map();
    for (const control of detail.querySelectorAll("[data-edited]")) {
      values.set(control.name, control.value);
    }
    const active = document.activeElement;
    const focused = active && detail.contains(active) && active.name ? active : null;
    return {
      values,
      focused: focused ? focused.name : null,
      selection: focused && typeof focused.selectionStart === "number"
        ? [focused.selectionStart, focused.selectionEnd] : null,
    };
  }

  function restoreForms({ values, focused, selection }) {
    const named = (name) => detail.querySelector(`[name="${CSS.escape(name)}"]`);
    for (const [name, value] of values) {
      const control = named(name);
      if (!control) continue;
      control.value = value;
      control.dataset.edited = "true";
    }
    const control = focused ? named(focused) : null;
    if (!control) return;
    control.focus();
    if (selection && typeof control.setSelectionRange === "function") {
      control.setSelectionRange(...selection);
    }
  }

  async function showDetail(alertId) {
    if (!alertId) return;
    selected = alertId;
    const base = `/v1/alerts/${encodeURIComponent(alertId)}`;
    const [alert, history] = await Promise.all([session.get(base), session.get(`${base}/history`)]);
    const kept = detail.dataset.alertId === alertId ? editedForms() : null;
    clear(detail,
      h("h2", { id: "alert-detail-title", tabindex: -1 }, "Alert for ", alert.customer_id),
      h("dl", { class: "facts" },
        h("dt", {}, "Customer"), h("dd", {}, h("a", { href: `#/customers/${encodeURIComponent(alert.customer_id)}` }, alert.customer_id)),
        h("dt", {}, "Risk"), h("dd", {}, riskBadge(alert.risk_level, alert.churn_probability)),
        h("dt", {}, "Status"), h("dd", { id: "alert-status" }, STATUS_LABELS[alert.status] || alert.status),
        h("dt", {}, "Assignee"), h("dd", {}, assigneeLabel(alert.assignee_id)),
        alert.snoozed_until ? [h("dt", {}, "Snoozed until"), h("dd", {}, formatTime(alert.snoozed_until))] : null,
        alert.outcome ? [h("dt", {}, "Outcome"), h("dd", {}, OUTCOME_LABELS[alert.outcome] || alert.outcome)] : null,
        h("dt", {}, "Model"), h("dd", {}, alert.model_version),
      ),
      h("h3", {}, "Top drivers"),
      h("ul", { class: "drivers" }, alert.drivers.map((driver) => h("li", {},
        `${driver.feature} = ${driver.value === null ? "unknown" : formatNumber(driver.value, 2)} `,
        h("span", { class: `direction ${driver.direction}` },
          driver.direction === "increases_risk" ? "(raises risk)" : "(lowers risk)")))),
      h("h3", {}, "Work it"),
      actions(alert),
      h("h3", {}, "History"),
      h("ol", { class: "history" }, history.items.map((entry) => h("li", {},
        h("time", { datetime: entry.created_at }, formatTime(entry.created_at)), " ",
        `${entry.action} by ${entry.actor === "system" ? "the system" : assigneeLabel(entry.actor)}`,
        entry.from_status ? ` (${entry.from_status} → ${entry.to_status})` : ` (${entry.to_status})`,
        entry.details && entry.details.note ? `: “${entry.details.note}”` : ""))),
    );
    detail.dataset.alertId = alertId;
    if (kept) restoreForms(kept);
    detail.hidden = false;
    for (const tr of body.querySelectorAll("tr[data-alert-id]")) {
      tr.classList.toggle("selected", tr.dataset.alertId === alertId);
    }
  }

  let pending = null;
  function reloadSoon() {
    if (pending !== null) return;
    pending = setTimeout(() => {
      pending = null;
      load().catch(() => {});
      if (selected) showDetail(selected).catch(() => {});
    }, 300);
  }
  cleanup.push(
    live.on("churn_alert", (alert) => {
      notify(`New ${alert.risk_level} risk alert for customer ${alert.customer_id}`);
      reloadSoon();
    }),
    live.on("alert_updated", reloadSoon),
    () => clearTimeout(pending),
  );
  for (const control of Object.values(filters)) control.addEventListener("change", () => load());
  more.addEventListener("click", () => load(true));
  await load();
}
