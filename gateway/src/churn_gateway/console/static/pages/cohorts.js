// Cohorts: saved segments (a name and a customer filter) with their statistics; create, edit
// and delete them (analysts and above); open a cohort's customers on the Customers page.

import { clear, field, formatNumber, h, notify, select } from "../dom.js";

const RISK_LEVELS = [["high", "High"], ["medium", "Medium"], ["low", "Low"]];
// How many of the latest acquisition cohorts the heat map shows, per period.
const RETENTION_LIMIT = { month: 24, week: 26 };

/** A cohort's filter in words (every condition must hold). */
export function describeFilter(filter) {
  const parts = [];
  if (filter.risk_level && filter.risk_level.length) parts.push(`risk ${filter.risk_level.join(" or ")}`);
  if (filter.min_probability !== undefined && filter.min_probability !== null) {
    parts.push(`probability ≥ ${formatNumber(filter.min_probability, 2)}`);
  }
  if (filter.max_probability !== undefined && filter.max_probability !== null) {
    parts.push(`probability ≤ ${formatNumber(filter.max_probability, 2)}`);
  }
  if (filter.q) parts.push(`id, e-mail or name starts with “${filter.q}”`);
  if (filter.tag) parts.push(`tagged “${filter.tag}”`);
  if (filter.seen_after) parts.push(`active since ${filter.seen_after.slice(0, 10)}`);
  if (filter.seen_before) parts.push(`quiet since ${filter.seen_before.slice(0, 10)}`);
  for (const [name, value] of Object.entries(filter.attributes || {})) parts.push(`${name} = ${value}`);
  return parts.length ? parts.join("; ") : "every customer";
}

function money(value) {
  return typeof value === "number"
    ? value.toLocaleString(undefined, { maximumFractionDigits: 0 })
    : "—";
}

/** High-risk members at the start of the stats' trend (30 days) and now: "1 → 3 (+2)". */
function highTrend(stat) {
  const trend = stat && stat.trend;
  if (!trend || trend.length === 0) return "—";
  const first = trend[0].risk_levels.high;
  const last = trend[trend.length - 1].risk_levels.high;
  const change = last - first;
  return `${first} → ${last} (${change > 0 ? "+" : change < 0 ? "−" : "±"}${Math.abs(change)})`;
}

function riskMix(levels) {
  const order = ["high", "medium", "low", "unscored"];
  const parts = order.filter((level) => levels[level]).map((level) => `${levels[level]} ${level}`);
  return parts.length ? parts.join(", ") : "—";
}

/** The retention matrix as a heat map: one row per acquisition cohort, one column per period
 * after it; each cell says its share in words, its shade (ten steps) only repeats it. */
function heatMap(curves) {
  const unit = curves.period === "week" ? "Week" : "Month";
  const width = Math.max(0, ...curves.cohorts.map((cohort) => cohort.retention.length));
  return h("div", { class: "table-wrap" }, h("table", { class: "data heatmap", id: "retention-table" },
    h("caption", { class: "visually-hidden" },
      `Share of each ${curves.period}'s new customers who ordered again in each later ${curves.period}`),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Cohort"), h("th", { scope: "col" }, "Customers"),
      Array.from({ length: width }, (_, offset) => h("th", { scope: "col" }, `${unit} ${offset}`)))),
    h("tbody", {}, curves.cohorts.map((cohort) => h("tr", {},
      h("th", { scope: "row" }, cohort.cohort),
      h("td", { class: "num" }, cohort.size.toLocaleString()),
      Array.from({ length: width }, (_, offset) => {
        const share = cohort.retention[offset];
        if (share === undefined) return h("td", { class: "heat-none" }, "");
        const step = Math.min(9, Math.floor(share * 10));
        return h("td", { class: `num heat heat-${step}` }, `${Math.round(share * 100)} %`);
      }))))));
}

function retentionSection(session) {
  const period = select("period", [["month", "Months"], ["week", "Weeks"]], "month");
  const body = h("div", { id: "retention" });
  const section = h("section", { "aria-labelledby": "retention-title" },
    h("h2", { id: "retention-title" }, "Retention by acquisition cohort"),
    h("p", { class: "hint" },
      "A customer's cohort is the period of their first order; each cell is the share of the cohort that ordered in the period that many periods later (from the order_placed events)."),
    h("div", { class: "filters" }, field("Period", period)),
    body);
  async function load() {
    const curves = await session.get("/v1/cohorts/retention",
      { period: period.value, limit: RETENTION_LIMIT[period.value] });
    clear(body, curves.cohorts.length
      ? heatMap(curves)
      : h("p", {}, `No customer placed a first order in the latest ${RETENTION_LIMIT[period.value]} ${period.value}s (retention comes from order_placed events).`));
  }
  period.addEventListener("change", () => load().catch((error) => {
    clear(body, h("p", { class: "error", role: "alert" }, `Could not load retention: ${error.message}`));
  }));
  return { section, load };
}

export async function cohortsPage(container, { session }) {
  const writer = session.can("analyst");
  const body = h("tbody");
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  container.append(h("h1", {}, "Cohorts"),
    h("p", { class: "hint" },
      "A cohort is a saved customer filter; its members follow the data. Use it as a filter on the Customers page, in exports and in bulk actions."),
    summary,
    h("div", { class: "table-wrap" }, h("table", { class: "data", id: "cohorts-table" },
      h("caption", { class: "visually-hidden" }, "Cohorts"),
      h("thead", {}, h("tr", {}, ["Cohort", "Filter", "Customers", "Risk mix", "High risk, 30 days ago → now",
        "Mean probability", "Revenue at risk", "Actions"].map((label) => h("th", { scope: "col" }, label)))),
      body)));

  // The form creates a cohort, or edits the one chosen with Edit.
  let editing = null;
  const name = h("input", { type: "text", name: "name", maxlength: 100, required: true, autocomplete: "off" });
  const levels = RISK_LEVELS.map(([value, label]) => [value,
    h("input", { type: "checkbox", name: "risk_level", value, id: `cohort-risk-${value}` }), label]);
  const minProbability = h("input", { type: "number", name: "min_probability", min: 0, max: 1, step: 0.01 });
  const maxProbability = h("input", { type: "number", name: "max_probability", min: 0, max: 1, step: 0.01 });
  const q = h("input", { type: "text", name: "q", maxlength: 64, autocomplete: "off" });
  const tag = h("input", { type: "text", name: "tag", maxlength: 64, autocomplete: "off" });
  const quietSince = h("input", { type: "date", name: "seen_before" });
  const attributeName = h("input", { type: "text", name: "attribute_name", maxlength: 64, autocomplete: "off" });
  const attributeValue = h("input", { type: "text", name: "attribute_value", maxlength: 255, autocomplete: "off" });
  const formTitle = h("h2", { id: "cohort-form-title" }, "New cohort");
  const submit = h("button", { type: "submit" }, "Save cohort");
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel editing");
  const error = h("p", { class: "error", role: "alert" });
  const form = writer
    ? h("form", { class: "card grid-form", "aria-labelledby": "cohort-form-title" },
      formTitle,
      field("Name", name),
      h("fieldset", {}, h("legend", {}, "Risk level (any of)"),
        levels.map(([, box, label]) => h("label", { class: "check", for: box.id }, box, label))),
      field("Probability at least", minProbability),
      field("Probability at most", maxProbability),
      field("Id, e-mail or name starts with", q),
      field("Tag", tag),
      field("Quiet since (no activity from this day)", quietSince),
      field("Attribute name", attributeName, "With its value: customers whose imported attribute equals it"),
      field("Attribute value", attributeValue),
      error,
      h("div", { class: "actions" }, submit, cancel))
    : null;
  if (form) container.append(form);
  const retention = retentionSection(session);
  container.append(retention.section);

  function readFilter() {
    const filter = {};
    const risk = levels.filter(([, box]) => box.checked).map(([value]) => value);
    if (risk.length) filter.risk_level = risk;
    if (minProbability.value !== "") filter.min_probability = Number(minProbability.value);
    if (maxProbability.value !== "") filter.max_probability = Number(maxProbability.value);
    if (q.value.trim()) filter.q = q.value.trim();
    if (tag.value.trim()) filter.tag = tag.value.trim();
    if (quietSince.value) filter.seen_before = `${quietSince.value}T00:00:00Z`;
    if (attributeName.value.trim()) filter.attributes = { [attributeName.value.trim()]: attributeValue.value };
    return filter;
  }

  function fill(cohort) {
    const filter = cohort ? cohort.filter : {};
    name.value = cohort ? cohort.name : "";
    for (const [value, box] of levels) box.checked = Boolean(filter.risk_level && filter.risk_level.includes(value));
    minProbability.value = filter.min_probability ?? "";
    maxProbability.value = filter.max_probability ?? "";
    q.value = filter.q || "";
    tag.value = filter.tag || "";
    quietSince.value = filter.seen_before ? filter.seen_before.slice(0, 10) : "";
    const [attribute] = Object.entries(filter.attributes || {});
    attributeName.value = attribute ? attribute[0] : "";
    attributeValue.value = attribute ? attribute[1] : "";
    editing = cohort;
    formTitle.textContent = cohort ? `Edit cohort ${cohort.name}` : "New cohort";
    cancel.hidden = !cohort;
    error.textContent = "";
  }

  /** Deleting a cohort deletes the saved filter only (its customers stay), so it asks nothing. */
  async function remove(cohort) {
    try {
      await session.request("DELETE", `/v1/cohorts/${encodeURIComponent(cohort.id)}`);
      notify(`Cohort ${cohort.name} deleted; its customers stay`);
      if (editing && editing.id === cohort.id) fill(null);
      await load();
    } catch (failure) {
      notify(`Could not delete ${cohort.name}: ${failure.message}`, "error");
    }
  }

  async function load() {
    const list = await session.get("/v1/cohorts");
    const stats = await Promise.all(list.items.map((cohort) =>
      session.get(`/v1/cohorts/${encodeURIComponent(cohort.id)}/stats`).catch(() => null)));
    summary.textContent = `${list.items.length} cohort${list.items.length === 1 ? "" : "s"}`;
    clear(body, list.items.map((cohort, index) => {
      const stat = stats[index];
      const actions = [h("a", { href: `#/customers?segment=${encodeURIComponent(cohort.id)}` },
        h("span", { class: "visually-hidden" }, `Customers of ${cohort.name}: `), "Customers")];
      if (writer) {
        actions.push(
          h("button", { type: "button", class: "secondary", "aria-label": `Edit ${cohort.name}`, on: { click: () => {
            fill(cohort);
            name.focus();
          } } }, "Edit"),
          h("button", { type: "button", class: "danger", "aria-label": `Delete ${cohort.name}`,
            on: { click: () => remove(cohort) } }, "Delete"));
      }
      return h("tr", { dataset: { cohortId: cohort.id } },
        h("th", { scope: "row" }, cohort.name),
        h("td", {}, describeFilter(cohort.filter)),
        h("td", { class: "num size" }, stat ? formatNumber(stat.size) : "—"),
        h("td", { class: "mix" }, stat ? riskMix(stat.risk_levels) : "—"),
        h("td", { class: "num trend" }, highTrend(stat)),
        h("td", { class: "num" }, stat && stat.mean_probability !== null ? formatNumber(stat.mean_probability) : "—"),
        h("td", { class: "num revenue" }, stat ? money(stat.revenue_at_risk) : "—"),
        h("td", {}, h("div", { class: "actions" }, actions)),
      );
    }));
    if (list.items.length === 0) {
      body.append(h("tr", {}, h("td", { colspan: 8 }, writer
        ? "No cohort yet: save one with the form below."
        : "No cohort yet.")));
    }
  }

  if (form) {
    cancel.addEventListener("click", () => fill(null));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const payload = { name: name.value.trim(), filter: readFilter() };
      submit.disabled = true;
      try {
        if (editing) {
          await session.request("PATCH", `/v1/cohorts/${encodeURIComponent(editing.id)}`, { body: payload });
          notify(`Cohort ${payload.name} saved`);
        } else {
          await session.post("/v1/cohorts", payload);
          notify(`Cohort ${payload.name} created`);
        }
        fill(null);
        await load();
      } catch (failure) {
        error.textContent = failure.message;
      } finally {
        submit.disabled = false;
      }
    });
  }
  await Promise.all([load(), retention.load()]);
}
