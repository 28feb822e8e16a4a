// Models: versions and their metrics, the model card, promote and roll back (admins), start a
// training job and follow its progress (analysts and above).

import { reliabilityChart } from "../charts.js";
import { clear, field, formatNumber, formatTime, h, notify, select } from "../dom.js";

const METRIC_PREFERENCE = ["pr_auc", "roc_auc", "brier", "log_loss", "precision_at_top_decile"];

function keyMetrics(metrics) {
  const numeric = Object.entries(metrics || {}).filter(([, value]) => typeof value === "number");
  numeric.sort(([a], [b]) => {
    const rank = (name) => {
      const index = METRIC_PREFERENCE.indexOf(name);
      return index === -1 ? METRIC_PREFERENCE.length : index;
    };
    return rank(a) - rank(b) || a.localeCompare(b);
  });
  return numeric.slice(0, 4);
}

export async function modelsPage(container, { session, live, cleanup }) {
  const current = h("p", { class: "summary", id: "current-model" });
  const shadow = h("p", { class: "summary", id: "shadow-report" });
  const body = h("tbody");
  const card = h("section", { class: "card", "aria-labelledby": "card-title", hidden: true });
  container.append(h("h1", {}, "Models"), current, shadow);
  if (session.can("admin")) {
    container.append(h("div", { class: "actions" }, h("button", {
      type: "button", class: "secondary", on: { click: rollback },
    }, "Roll back the champion")));
  }
  container.append(
    h("div", { class: "table-wrap" }, h("table", { class: "data", id: "models-table" },
      h("caption", { class: "visually-hidden" }, "Model versions"),
      h("thead", {}, h("tr", {}, ["Version", "Role", "Created", "Key metrics", "Actions"].map(
        (label) => h("th", { scope: "col" }, label)))),
      body,
    )),
    card,
  );

  async function load() {
    const [model, list, shadowReport] = await Promise.all([
      session.get("/v1/models/current"),
      session.get("/v1/models"),
      session.get("/v1/models/shadow").catch(() => null),
    ]);
    current.textContent = `Serving ${model.version}${model.is_default ? " (the global default model)" : ""}.`;
    shadow.textContent = shadowReport && shadowReport.challenger && shadowReport.n > 0
      ? `Challenger ${shadowReport.challenger} shadow-scored ${shadowReport.n} snapshots beside ${shadowReport.champion}: ` +
        `same risk level on ${(shadowReport.agreement * 100).toFixed(1)} %, mean probability difference ${shadowReport.mean_abs_diff.toFixed(3)}.`
      : "No challenger has been shadow-scored yet.";
    clear(body, list.items.map((item) => {
      const buttons = [h("button", {
        type: "button", class: "link", on: { click: () => showCard(item) },
      }, "Model card")];
      if (session.can("admin") && item.tenant_id !== null) {
        for (const alias of ["champion", "challenger"]) {
          if (!item.aliases.includes(alias)) {
            buttons.push(h("button", {
              type: "button", class: "secondary",
              "aria-label": `Make ${item.version} the ${alias}`,
              on: { click: () => promote(item.version, alias) },
            }, `Make ${alias}`));
          }
        }
      }
      return h("tr", { dataset: { version: item.version } },
        h("th", { scope: "row" }, item.version),
        h("td", { class: "aliases" }, item.tenant_id === null
          ? `global default${item.aliases.length ? ` (${item.aliases.join(", ")})` : ""}`
          : item.aliases.join(", ") || "—"),
        h("td", {}, formatTime(item.created_at)),
        h("td", {}, h("ul", { class: "metrics" }, keyMetrics(item.metrics).map(([name, value]) =>
          h("li", {}, `${name}: ${formatNumber(value)}`)))),
        h("td", {}, h("div", { class: "actions" }, buttons)),
      );
    }));
  }

  async function promote(version, alias) {
    try {
      await session.post(`/v1/models/${encodeURIComponent(version)}/promote`, { alias });
      notify(`${version} is now the ${alias}`);
      await load();
    } catch (error) {
      notify(`Could not promote ${version}: ${error.message}`, "error");
    }
  }

  async function rollback() {
    try {
      const alias = await session.post("/v1/models/rollback");
      notify(`The champion is ${alias.version || "the default model"} again`);
      await load();
    } catch (error) {
      notify(`Could not roll back: ${error.message}`, "error");
    }
  }

  async function showCard(item) {
    const version = item.version;
    const response = await session.request("GET", `/v1/models/${encodeURIComponent(version)}/card`, { raw: true });
    clear(card,
      h("h2", { id: "card-title", tabindex: -1 }, `Model card of ${version}`),
      calibration(item),
      h("h3", {}, "Model card"),
      h("pre", { class: "model-card" }, await response.text()),
    );
    card.hidden = false;
    card.querySelector("h2").focus();
  }

  if (session.can("analyst")) container.append(trainingForm(session, live, cleanup, load));
  await load();
}

function trainingForm(session, live, cleanup, reload) {
  const source = select("source", [["events", "Event history (point in time)"], ["customers", "Imported customers with a label"]], "events");
  const horizon = select("horizon_days", [["30", "30 days"], ["60", "60 days"], ["90", "90 days"], ["180", "180 days"]], "90");
  const label = h("input", { type: "text", name: "label", maxlength: 200, placeholder: "churned" });
  const progress = h("progress", { max: 100, value: 0, id: "training-progress" });
  const stage = h("p", { class: "summary", "aria-live": "polite", id: "training-stage" });
  const submit = h("button", { type: "submit" }, "Start training");
  let jobId = null;
  let poll = null;

  function show(job) {
    if (job.job_id !== jobId) return;
    progress.value = job.progress;
    progress.textContent = `${job.progress} %`;
    stage.textContent = `${job.status}: ${job.stage} (${job.progress} %)${job.model_version ? `, version ${job.model_version}` : ""}${job.error ? ` — ${job.error}` : ""}`;
    if (job.status === "succeeded" || job.status === "failed") {
      clearInterval(poll);
      submit.disabled = false;
      if (job.status === "succeeded") reload();
    }
  }

  cleanup.push(live.on("training_progress", show), () => clearInterval(poll));
  const form = h("form", { class: "card", "aria-labelledby": "train-title" },
    h("h2", { id: "train-title" }, "Train a model"),
    field("Training data", source),
    field("Horizon", horizon),
    field("Label column", label, "Only for imported customers"),
    submit,
    h("div", { class: "field" }, h("label", { for: "training-progress" }, "Progress"), progress),
    stage,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const body = { source: source.value, horizon_days: Number(horizon.value) };
    if (source.value === "customers" && label.value.trim()) body.label = label.value.trim();
    try {
      ({ job_id: jobId } = await session.post("/v1/models/train", body));
      stage.textContent = `queued (job ${jobId})`;
      // The live feed brings progress; polling covers a feed that is down.
      poll = setInterval(async () => {
        try {
          show(await session.get(`/v1/models/jobs/${encodeURIComponent(jobId)}`));
        } catch {
          /* the next tick tries again */
        }
      }, 3000);
    } catch (error) {
      stage.textContent = `Could not start training: ${error.message}`;
      submit.disabled = false;
    }
  });
  return form;
}

/** The reliability diagram of a version's out-of-fold calibration table, with the table itself
 * as the text alternative (the numbers the points stand for). */
function calibration(item) {
  const table = (item.metrics && item.metrics.calibration_table) || [];
  const ece = item.metrics ? item.metrics.ece : undefined;
  const section = h("section", { class: "calibration", "aria-labelledby": "calibration-title" },
    h("h3", { id: "calibration-title" }, "Calibration"));
  if (!table.length) {
    section.append(h("p", { class: "hint", id: "calibration-missing" },
      "This version has no calibration table (it was registered without an out-of-fold evaluation)."));
    return section;
  }
  section.append(
    h("p", { class: "summary", id: "calibration-ece" }, typeof ece === "number"
      ? `Expected calibration error ${ece.toFixed(3)}: on average the predicted churn probability is ${(ece * 100).toFixed(1)} points from the observed churn rate.`
      : "Expected calibration error not recorded."),
    reliabilityChart(table, `Calibration of ${item.version}: observed churn rate against the predicted probability`),
    h("p", { class: "hint" },
      "Across: the mean predicted churn probability of each tenth of the probability range; up: the share of those customers who churned (out-of-fold). The dashed diagonal is perfect calibration: points above it churn more than predicted."),
    h("details", {}, h("summary", {}, "Calibration table"),
      h("div", { class: "table-wrap" }, h("table", { class: "data", id: "calibration-table" },
        h("caption", { class: "visually-hidden" }, `Calibration of ${item.version}`),
        h("thead", {}, h("tr", {}, ["Predicted", "Mean predicted", "Observed churn rate", "Customers"].map(
          (label) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, table.map((bin) => h("tr", {},
          h("th", { scope: "row" }, `${(bin.bin_lower * 100).toFixed(0)}–${(bin.bin_upper * 100).toFixed(0)} %`),
          h("td", { class: "num" }, formatNumber(bin.mean_predicted)),
          h("td", { class: "num" }, formatNumber(bin.observed_rate)),
          h("td", { class: "num" }, formatNumber(bin.count)))))))),
  );
  return section;
}
