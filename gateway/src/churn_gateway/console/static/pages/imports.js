// Imports: upload a CSV or XLSX of customers with its column mapping, follow its progress
// (the import_progress live event, polling as a fallback), read and download the rows it
// rejected.

import { clear, field, formatTime, h, notify } from "../dom.js";

const POLL_MS = 1000;
const XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
// Bytes read from a CSV in the browser to find its header row (the columns offered below).
const HEADER_BYTES = 64 * 1024;

function percent(job) {
  if (job.status === "succeeded") return 100;
  const total = job.total_rows ?? job.rows_total;
  if (!total) return 0;
  const processed = job.processed_rows ?? job.rows_imported + job.rows_rejected;
  return Math.min(99, Math.floor((processed / total) * 100));
}

/** The first record of a CSV text (RFC 4180 quoting; the delimiter that splits it most). */
export function csvHeader(text) {
  const line = [];
  let cell = "";
  let quoted = false;
  let index = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const firstLine = text.slice(index).split(/\r?\n/, 1)[0];
  const delimiter = [",", ";", "\t"].reduce((best, candidate) =>
    firstLine.split(candidate).length > firstLine.split(best).length ? candidate : best, ",");
  for (; index < text.length; index += 1) {
    const char = text[index];
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        cell += '"';
        index += 1;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === delimiter) {
      line.push(cell);
      cell = "";
    } else if (char === "\n" || char === "\r") break;
    else cell += char;
  }
  line.push(cell);
  return line.map((name) => name.trim()).filter((name) => name !== "");
}

export async function importsPage(container, { session, live, cleanup }) {
  container.append(h("h1", {}, "Imports"));
  if (!session.can("analyst")) {
    container.append(h("p", { class: "hint" }, "Importing customers needs the analyst role."));
    return;
  }
  const file = h("input", {
    type: "file", name: "file", accept: `.csv,.xlsx,text/csv,${XLSX_TYPE}`, required: true,
  });
  const columns = h("datalist", { id: "import-columns" });
  const columnInput = (name, value = "") => h("input", {
    type: "text", name, value, maxlength: 200, list: "import-columns", autocomplete: "off",
  });
  const idColumn = columnInput("id_column", "customer_id");
  idColumn.required = true;
  const emailColumn = columnInput("email_column");
  const nameColumn = columnInput("name_column");
  const labelColumn = columnInput("label_column");
  const keep = h("input", { type: "text", name: "attributes", maxlength: 2000, autocomplete: "off" });
  const found = h("p", { class: "hint", id: "import-columns-found", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Upload");
  const progress = h("progress", { max: 100, value: 0, id: "import-progress" });
  const status = h("p", { class: "summary", id: "import-status", "aria-live": "polite" });
  const report = h("div");
  const form = h("form", { class: "card", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload customers"),
    h("p", { class: "hint" }, "A CSV (UTF-8 or Windows-1252) or an XLSX (its first sheet) with a header row: one customer per row. Other columns become attributes; a label column can train a model (Models)."),
    field("File", file),
    found,
    columns,
    h("fieldset", { class: "mapping" }, h("legend", {}, "Column mapping"),
      field("Column with the customer id", idColumn),
      field("Column with the e-mail", emailColumn, "Optional: stored as the attribute email"),
      field("Column with the name", nameColumn, "Optional: stored as the attribute name"),
      field("Label column", labelColumn, "Optional: whether the customer churned, for training"),
      field("Other columns to keep", keep, "Comma-separated; empty keeps every other column")),
    submit,
    h("div", { class: "field" }, h("label", { for: "import-progress" }, "Progress"), progress),
    status,
    report,
  );
  container.append(form);
  let timer = null;
  let following = null;
  cleanup.push(() => clearTimeout(timer));

  // A CSV's header is read here to offer its columns; an XLSX is read by the server only.
  file.addEventListener("change", async () => {
    clear(columns);
    found.textContent = "";
    const chosen = file.files[0];
    if (!chosen || /\.xlsx$/i.test(chosen.name)) {
      if (chosen) found.textContent = "A spreadsheet: type the column names of its header row.";
      return;
    }
    const header = csvHeader(await chosen.slice(0, HEADER_BYTES).text());
    for (const name of header) columns.append(h("option", { value: name }));
    found.textContent = `Columns found: ${header.join(", ")}`;
    if (!header.includes(idColumn.value) && header.length) {
      const guess = header.find((name) => /^(customer_?id|id|customerid|client_?id)$/i.test(name));
      if (guess) idColumn.value = guess;
    }
  });

  function mapping() {
    const value = { id: idColumn.value.trim() };
    if (emailColumn.value.trim()) value.email = emailColumn.value.trim();
    if (nameColumn.value.trim()) value.name = nameColumn.value.trim();
    if (labelColumn.value.trim()) value.label = labelColumn.value.trim();
    const kept = keep.value.split(",").map((name) => name.trim()).filter(Boolean);
    if (kept.length) value.attributes = kept;
    return value;
  }

  async function downloadErrors(importId) {
    try {
      const response = await session.request("GET",
        `/v1/customers/imports/${encodeURIComponent(importId)}/errors`, { raw: true });
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: `import-${importId}-errors.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      notify(`Could not download the error report: ${error.message}`, "error");
    }
  }

  /** Shows a state of the import (the API's or the feed's); true once it has ended. */
  function show(job) {
    const done = percent(job);
    progress.value = done;
    progress.textContent = `${done} %`;
    const total = job.total_rows ?? job.rows_total;
    status.textContent = `${job.status}: ${job.rows_imported} imported, ${job.rows_rejected} rejected of ${total ?? "?"} rows (${done} %)${job.failure ? ` — ${job.failure}` : ""}`;
    return job.status === "succeeded" || job.status === "failed";
  }

  function finish(job) {
    clear(report,
      h("p", {}, `Finished ${formatTime(job.finished_at)}.`),
      job.errors.length
        ? [h("div", { class: "table-wrap" }, h("table", { class: "data", id: "import-errors" },
          h("caption", {}, job.rows_rejected > job.errors.length
            ? `Rejected rows (the first ${job.errors.length} of ${job.rows_rejected})`
            : "Rejected rows"),
          h("thead", {}, h("tr", {}, ["Line", "Column", "Value", "Reason"].map(
            (label) => h("th", { scope: "col" }, label)))),
          h("tbody", {}, job.errors.map((error) => h("tr", {},
            h("td", { class: "num" }, error.line), h("td", {}, error.column ?? "—"),
            h("td", { class: "wrap" }, error.value ?? "—"), h("td", {}, error.error)))))),
        h("button", { type: "button", class: "secondary", on: { click: () => downloadErrors(job.import_id) } },
          "Download the error report (CSV)")]
        : h("p", {}, "No row was rejected."),
    );
    submit.disabled = false;
    following = null;
    notify(`Import ${job.status}`);
  }

  async function poll(importId) {
    if (following !== importId) return;
    const job = await session.get(`/v1/customers/imports/${encodeURIComponent(importId)}`);
    if (following !== importId) return;
    if (show(job)) {
      finish(job);
      return;
    }
    timer = setTimeout(() => poll(importId).catch((error) => {
      status.textContent = `Lost track of the import: ${error.message}`;
      submit.disabled = false;
    }), POLL_MS);
  }

  // The feed brings progress as it happens; the final state (with its errors) is read once.
  cleanup.push(live.on("import_progress", (event) => {
    if (!following || event.import_id !== following) return;
    if (show(event)) {
      clearTimeout(timer);
      poll(event.import_id).catch(() => {});
    }
  }));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length || !idColumn.reportValidity()) return;
    submit.disabled = true;
    clear(report);
    const body = new FormData();
    body.append("file", file.files[0]);
    body.append("mapping", JSON.stringify(mapping()));
    try {
      const response = await session.request("POST", "/v1/customers/import", { form: body, raw: true });
      const accepted = await response.json();
      // 200: the same file and mapping was imported before; that import is shown.
      status.textContent = response.status === 200 ? "This file was uploaded before: its import is shown." : "queued";
      if (response.status === 200) notify("This file was uploaded before: its import is shown");
      following = accepted.import_id;
      await poll(accepted.import_id);
    } catch (error) {
      status.textContent = `Could not import: ${error.message}`;
      submit.disabled = false;
    }
  });
}
