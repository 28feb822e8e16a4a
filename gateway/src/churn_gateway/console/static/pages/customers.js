// The customers table: search, risk, tag and cohort filters, sort, pages (cursor); export of
// what the filters match, and tag/untag/delete on the ticked rows or on every customer the
// filters match (analysts and above; deleting: admins), after a dry-run count.

import { clear, field, formatNumber, formatTime, h, notify, riskBadge, select } from "../dom.js";

const SORT_OPTIONS = [
  ["-churn_probability", "Highest risk first"],
  ["-updated_at", "Most recently active"],
  ["customer_id", "Customer id"],
];
const RISK_OPTIONS = [["", "Any risk"], ["high", "High"], ["medium", "Medium"], ["low", "Low"]];
const SIZE_OPTIONS = [["25", "25"], ["50", "50"], ["100", "100"]];

const ACTION_WORDS = { tag: "Tag", untag: "Untag", delete: "Delete" };

/** ``query``: the hash's query string (``#/customers?segment=<cohort id>``). */
export async function customersPage(container, { session, live, cleanup }, query) {
  const initial = new URLSearchParams(query || "");
  const search = h("input", { type: "search", name: "q", maxlength: 64, autocomplete: "off" });
  const tagFilter = h("input", { type: "text", name: "tag", maxlength: 64, autocomplete: "off" });
  const risk = select("risk_level", RISK_OPTIONS, "");
  const cohorts = await session.get("/v1/cohorts").catch(() => ({ items: [] }));
  const segment = select("segment",
    [["", "Any"], ...cohorts.items.map((cohort) => [cohort.id, cohort.name])], initial.get("segment") || "");
  const sort = select("sort", SORT_OPTIONS, "-churn_probability");
  const size = select("limit", SIZE_OPTIONS, "50");
  const body = h("tbody");
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const next = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  // Cursors of the pages seen so far: [null (first page), cursor of page 2, …].
  let cursors = [null];
  let pageIndex = 0;

  const form = h("form", { class: "filters", role: "search", "aria-label": "Find customers" },
    field("Search", search, "Prefix of the id, e-mail or name"),
    field("Risk", risk),
    field("Tag", tagFilter),
    field("Cohort", segment),
    field("Sort", sort),
    field("Per page", size),
    h("button", { type: "submit" }, "Apply"),
  );
  const exports = session.can("analyst")
    ? h("div", { class: "actions" }, ["csv", "xlsx"].map((format) => h("button", {
      type: "button", class: "secondary", on: { click: () => download(format) },
    }, `Export ${format.toUpperCase()}`)))
    : null;
  function filters() {
    return {
      q: search.value.trim(), risk_level: risk.value, tag: tagFilter.value.trim(), segment: segment.value,
    };
  }
  // The filters of the table shown (set by Apply): pages, exports and bulk actions use them.
  let applied = filters();
  /** ``applied`` as the JSON filter of bulk actions (only the conditions given). */
  function jsonFilter() {
    const filter = {};
    if (applied.q) filter.q = applied.q;
    if (applied.risk_level) filter.risk_level = [applied.risk_level];
    if (applied.tag) filter.tag = applied.tag;
    if (applied.segment) filter.segment = applied.segment;
    return filter;
  }
  function describeFilter() {
    const parts = [];
    if (applied.q) parts.push(`search “${applied.q}”`);
    if (applied.risk_level) parts.push(`${applied.risk_level} risk`);
    if (applied.tag) parts.push(`tag “${applied.tag}”`);
    if (applied.segment) parts.push(`cohort “${segment.selectedOptions[0]?.textContent || applied.segment}”`);
    return parts.length ? parts.join(", ") : "no filter: every customer";
  }

  // Bulk actions on the rows ticked on this page (analysts tag and untag; admins delete).
  const writer = session.can("analyst");
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select every customer on this page" });
  const tagName = h("input", { type: "text", name: "bulk_tag", maxlength: 64, required: true });
  const selectedCount = h("span", { class: "summary", "aria-live": "polite" }, "0 selected");
  function selectedIds() {
    return [...body.querySelectorAll("input[data-customer-id]:checked")].map((box) => box.dataset.customerId);
  }
  function updateSelection() {
    const count = selectedIds().length;
    selectedCount.textContent = `${count} selected`;
  }
  async function bulk(action, payload) {
    const ids = selectedIds();
    if (ids.length === 0) {
      notify("Select customers first", "error");
      return;
    }
    try {
      const result = await session.post("/v1/customers/bulk", { action, customer_ids: ids, ...payload });
      notify(`${action}: ${result.changed} of ${result.matched} customers changed`);
      await load();
    } catch (error) {
      notify(`${action} failed: ${error.message}`, "error");
    }
  }
  // The applied filters saved as a cohort (a cohort's filter cannot name another cohort).
  const cohortName = h("input", { type: "text", name: "cohort_name", maxlength: 100, required: true, autocomplete: "off" });
  const saveCohort = writer
    ? h("form", { class: "inline", "aria-label": "Save the filters as a cohort", on: { submit: async (event) => {
      event.preventDefault();
      if (applied.segment) {
        notify("A cohort cannot be saved from another cohort: clear the Cohort filter first", "error");
        return;
      }
      const filter = jsonFilter();
      try {
        const saved = await session.post("/v1/cohorts", { name: cohortName.value.trim(), filter });
        notify(`Cohort ${saved.name} saved (${describeFilter()})`);
        segment.append(h("option", { value: saved.id }, saved.name));
        cohortName.value = "";
      } catch (error) {
        notify(`Could not save the cohort: ${error.message}`, "error");
      }
    } } },
    field("Cohort name", cohortName),
    h("button", { type: "submit", class: "secondary" }, "Save filters as cohort"))
    : null;

  // On every customer the filters match: a dry run counts them, then the user confirms.
  const confirmation = h("div", { class: "confirm", id: "bulk-confirm", role: "group", "aria-label": "Confirm the action", hidden: true });
  async function bulkOnFilter(action) {
    if (action !== "delete" && !tagName.reportValidity()) return;
    const payload = { action, filter: jsonFilter(), ...(action === "delete" ? {} : { tag: tagName.value.trim() }) };
    let counted;
    try {
      counted = await session.post("/v1/customers/bulk", { ...payload, dry_run: true });
    } catch (error) {
      notify(`${action} failed: ${error.message}`, "error");
      return;
    }
    const what = action === "delete"
      ? `Delete ${counted.matched} customers with their events and scores? This cannot be undone.`
      : `${ACTION_WORDS[action]} “${payload.tag}” on ${counted.matched} customers?`;
    const yes = h("button", { type: "button", class: action === "delete" ? "danger" : "", on: { click: async () => {
      yes.disabled = true;
      try {
        const result = await session.post("/v1/customers/bulk", payload);
        notify(`${action}: ${result.changed} of ${result.matched} customers changed`);
        confirmation.hidden = true;
        await load();
      } catch (error) {
        notify(`${action} failed: ${error.message}`, "error");
        yes.disabled = false;
      }
    } } }, `${ACTION_WORDS[action]} ${counted.matched} customers`);
    const no = h("button", { type: "button", class: "secondary", on: { click: () => {
      confirmation.hidden = true;
    } } }, "Cancel");
    clear(confirmation,
      h("p", { id: "bulk-confirm-text" }, `${counted.matched} customers match (${describeFilter()}). ${what}`),
      counted.matched > 0 ? yes : null, no);
    confirmation.hidden = false;
    (counted.matched > 0 ? yes : no).focus();
  }
  const bulkBar = writer
    ? h("form", { class: "inline bulk", "aria-label": "Act on the selected customers", on: { submit: (event) => {
      event.preventDefault();
      bulk("tag", { tag: tagName.value.trim() });
    } } },
    selectedCount,
    field("Tag name", tagName),
    h("button", { type: "submit", class: "secondary" }, "Tag selected"),
    h("button", { type: "button", class: "secondary", on: { click: () => {
      if (tagName.reportValidity()) bulk("untag", { tag: tagName.value.trim() });
    } } }, "Untag selected"),
    session.can("admin")
      ? h("button", { type: "button", class: "danger", on: { click: () => {
        const ids = selectedIds();
        if (ids.length && confirm(`Delete ${ids.length} customers with their events and scores? This cannot be undone.`)) {
          bulk("delete", {});
        }
      } } }, "Delete selected")
      : null,
    h("span", { class: "bulk-filter" },
      h("span", { class: "hint" }, "Or every customer the filters match:"),
      h("button", { type: "button", class: "secondary", on: { click: () => bulkOnFilter("tag") } }, "Tag all matching"),
      h("button", { type: "button", class: "secondary", on: { click: () => bulkOnFilter("untag") } }, "Untag all matching"),
      session.can("admin")
        ? h("button", { type: "button", class: "danger", on: { click: () => bulkOnFilter("delete") } }, "Delete all matching")
        : null))
    : null;
  selectAll.addEventListener("change", () => {
    for (const box of body.querySelectorAll("input[data-customer-id]")) box.checked = selectAll.checked;
    updateSelection();
  });

  /** The export streams from the API with the token in a header, so it is fetched here and
   * handed to the browser as a file (it is held in memory while it downloads). */
  async function download(format) {
    try {
      notify(`Preparing the ${format.toUpperCase()} export…`);
      const response = await session.request("GET", "/v1/customers/export", {
        query: { ...applied, format }, raw: true,
      });
      const disposition = response.headers.get("content-disposition") || "";
      const name = /filename="([^"]+)"/.exec(disposition);
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: name ? name[1] : `customers.${format}`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      notify(`Export failed: ${error.message}`, "error");
    }
  }

  async function load() {
    const page = await session.get("/v1/customers", {
      sort: sort.value,
      limit: size.value,
      cursor: cursors[pageIndex],
      ...applied,
    });
    selectAll.checked = false;
    clear(body, page.items.map((customer) => h("tr", { dataset: { customerId: customer.customer_id } },
      writer ? h("td", {}, h("input", {
        type: "checkbox", dataset: { customerId: customer.customer_id },
        "aria-label": `Select ${customer.customer_id}`, on: { change: updateSelection },
      })) : null,
      h("th", { scope: "row" },
        h("a", { href: `#/customers/${encodeURIComponent(customer.customer_id)}` }, customer.customer_id)),
      h("td", {}, riskBadge(customer.risk_level, customer.churn_probability)),
      h("td", { class: "num" }, formatNumber(customer.churn_probability)),
      h("td", {}, formatTime(customer.scored_at)),
      h("td", {}, formatTime(customer.updated_at)),
    )));
    if (page.items.length === 0) body.append(h("tr", {}, h("td", { colspan: 6 }, "No customers match.")));
    updateSelection();
    cursors = cursors.slice(0, pageIndex + 1);
    if (page.next_cursor) cursors.push(page.next_cursor);
    previous.disabled = pageIndex === 0;
    next.disabled = !page.next_cursor;
    summary.textContent = `Page ${pageIndex + 1}: ${page.items.length} customer${page.items.length === 1 ? "" : "s"}`;
  }

  container.append(
    h("h1", {}, "Customers"),
    form,
    exports,
    saveCohort,
    bulkBar,
    writer ? confirmation : null,
    summary,
    h("div", { class: "table-wrap" },
      h("table", { class: "data", id: "customers-table" },
        h("caption", { class: "visually-hidden" }, "Customers"),
        h("thead", {}, h("tr", {},
          writer ? h("th", { scope: "col" }, selectAll) : null,
          ["Customer", "Risk", "Probability", "Scored", "Last activity"].map(
            (label) => h("th", { scope: "col" }, label)))),
        body,
      ),
    ),
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, next),
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    applied = filters();
    confirmation.hidden = true;
    cursors = [null];
    pageIndex = 0;
    load();
  });
  for (const control of [risk, segment, sort, size]) {
    control.addEventListener("change", () => form.requestSubmit());
  }
  previous.addEventListener("click", () => {
    pageIndex = Math.max(0, pageIndex - 1);
    load();
  });
  next.addEventListener("click", () => {
    pageIndex += 1;
    load();
  });
  // New scores move customers: refresh the page shown, at most every 5 s.
  let timer = null;
  cleanup.push(live.on("score_update", () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      load().catch(() => {});
    }, 5000);
  }), () => clearTimeout(timer));
  await load();
}
