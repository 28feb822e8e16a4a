// Imports: upload a CSV of customers, follow its progress, read the rows it rejected.

import { clear, field, formatTime, h, notify } from "../dom.js";

const POLL_MS = 1000;

function percent(job) {
  if (job.status === "succeeded") return 100;
  if (!job.rows_total) return 0;
  return Math.min(99, Math.floor(((job.rows_imported + job.rows_rejected) / job.rows_total) * 100));
}

export async function importsPage(container, { session, cleanup }) {
  container.append(h("h1", {}, "Imports"));
  if (!session.can("analyst")) {
    container.append(h("p", { class: "hint" }, "Importing customers needs the analyst role."));
    return;
  }
  const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true });
  const idColumn = h("input", { type: "text", name: "id_column", value: "customer_id", required: true, maxlength: 200 });
  const submit = h("button", { type: "submit" }, "Upload");
  const progress = h("progress", { max: 100, value: 0, id: "import-progress" });
  const status = h("p", { class: "summary", id: "import-status", "aria-live": "polite" });
  const report = h("div");
  const form = h("form", { class: "card", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload customers"),
    h("p", { class: "hint" }, "A CSV with a header row: one customer per row. Other columns become attributes; a label column can train a model (Models)."),
    field("File", file),
    field("Column with the customer id", idColumn),
    submit,
    h("div", { class: "field" }, h("label", { for: "import-progress" }, "Progress"), progress),
    status,
    report,
  );
  container.append(form);
  let timer = null;
  cleanup.push(() => clearTimeout(timer));

  function show(job) {
    const done = percent(job);
    progress.value = done;
    progress.textContent = `${done} %`;
    status.textContent = `${job.status}: ${job.rows_imported} imported, ${job.rows_rejected} rejected of ${job.rows_total} rows (${done} %)${job.failure ? ` — ${job.failure}` : ""}`;
    if (job.status !== "succeeded" && job.status !== "failed") return false;
    clear(report,
      h("p", {}, `Finished ${formatTime(job.finished_at)}.`),
      job.errors.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data", id: "import-errors" },
          h("caption", {}, "Rejected rows"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "Reason"))),
          h("tbody", {}, job.errors.map((error) => h("tr", {},
            h("td", { class: "num" }, error.line), h("td", {}, error.error))))))
        : h("p", {}, "No row was rejected."),
    );
    return true;
  }

  async function follow(importId) {
    const job = await session.get(`/v1/customers/imports/${encodeURIComponent(importId)}`);
    if (show(job)) {
      submit.disabled = false;
      notify(`Import ${job.status}`);
      return;
    }
    timer = setTimeout(() => follow(importId).catch((error) => {
      status.textContent = `Lost track of the import: ${error.message}`;
      submit.disabled = false;
    }), POLL_MS);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    submit.disabled = true;
    clear(report);
    const body = new FormData();
    body.append("file", file.files[0]);
    body.append("id_column", idColumn.value);
    try {
      const accepted = await session.request("POST", "/v1/customers/import", { form: body });
      status.textContent = "queued";
      await follow(accepted.import_id);
    } catch (error) {
      status.textContent = `Could not import: ${error.message}`;
      submit.disabled = false;
    }
  });
}
