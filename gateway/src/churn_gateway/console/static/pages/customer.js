// One customer: score, risk history (when the API has it), drivers and recommended actions,
// features, attributes and alerts.

import { lineChart } from "../charts.js";
import { formatNumber, formatTime, h, riskBadge } from "../dom.js";

function table(caption, rows, headings) {
  return h("div", { class: "table-wrap" }, h("table", { class: "data" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headings.map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows),
  ));
}

export async function customerPage(container, { session }, customerId) {
  const path = `/v1/customers/${encodeURIComponent(customerId)}`;
  const customer = await session.get(path);
  container.append(
    h("p", {}, h("a", { href: "#/customers" }, "← All customers")),
    h("h1", {}, "Customer ", h("span", { class: "customer-id" }, customer.customer_id)),
    h("dl", { class: "facts" },
      h("dt", {}, "Risk"), h("dd", {}, riskBadge(customer.risk_level, customer.churn_probability)),
      h("dt", {}, "Scored"), h("dd", {}, formatTime(customer.scored_at)),
      h("dt", {}, "Model"), h("dd", {}, customer.model_version || "—"),
      h("dt", {}, "First seen"), h("dd", {}, formatTime(customer.first_seen_at)),
      h("dt", {}, "Features as of"), h("dd", {}, formatTime(customer.features_as_of)),
      h("dt", {}, "Tags"), h("dd", { id: "customer-tags" }, (customer.tags || []).length ? customer.tags.join(", ") : "—"),
    ),
  );

  const history = h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Risk over time"));
  container.append(history);
  try {
    const scores = await session.get(`${path}/scores`, { limit: 200 });
    const points = scores.items
      .map((item) => ({ at: new Date(item.scored_at), value: item.churn_probability }))
      .sort((a, b) => a.at - b.at);
    history.append(points.length
      ? lineChart(points, `Churn probability of ${customer.customer_id} over time`)
      : h("p", {}, "No scores yet."));
  } catch (error) {
    history.append(h("p", { class: "hint" }, error.status === 404
      ? "Score history is not available from this API version."
      : `Could not load the score history: ${error.message}`));
  }

  const explain = h("section", { "aria-labelledby": "drivers-title" }, h("h2", { id: "drivers-title" }, "Why, and what to do"));
  container.append(explain);
  if (session.can("analyst") && customer.features) {
    try {
      const prediction = await session.post("/v1/predictions", { customer_id: customer.customer_id });
      explain.append(
        table("Top drivers of the current score", prediction.drivers.map((driver) => h("tr", {},
          h("th", { scope: "row" }, driver.feature),
          h("td", { class: "num" }, formatNumber(driver.value)),
          h("td", {}, driver.direction === "increases_risk" ? "Raises risk" : "Lowers risk"),
          h("td", { class: "num" }, formatNumber(driver.contribution)),
        )), ["Feature", "Value", "Effect", "Contribution"]),
        h("h3", {}, "Recommended actions"),
        prediction.recommendations.length
          ? h("ul", { class: "recommendations" }, prediction.recommendations.map((item) => h("li", {},
            h("strong", {}, item.action), ": ", item.message)))
          : h("p", {}, "No recommended action for these drivers."),
      );
    } catch (error) {
      explain.append(h("p", { class: "hint" }, `Could not explain the score: ${error.message}`));
    }
  } else {
    explain.append(h("p", { class: "hint" }, customer.features
      ? "Explanations are computed on request, which needs the analyst role; the alerts below carry the drivers of their score."
      : "No features yet."));
  }

  const alerts = await session.get("/v1/alerts", { customer_id: customer.customer_id, limit: 20 });
  container.append(h("section", { "aria-labelledby": "alerts-title" },
    h("h2", { id: "alerts-title" }, "Alerts"),
    alerts.items.length
      ? table("Alerts for this customer", alerts.items.map((alert) => h("tr", {},
        h("td", {}, formatTime(alert.created_at)),
        h("td", {}, riskBadge(alert.risk_level, alert.churn_probability)),
        h("td", {}, alert.status),
        h("td", {}, alert.drivers.map((driver) => driver.feature).join(", ")),
      )), ["Raised", "Risk", "Status", "Drivers"])
      : h("p", {}, "No alerts."),
  ));

  const features = Object.entries(customer.features || {}).sort(([a], [b]) => a.localeCompare(b));
  container.append(h("section", { "aria-labelledby": "features-title" },
    h("h2", { id: "features-title" }, "Features"),
    features.length
      ? table("Feature profile", features.map(([name, value]) => h("tr", {},
        h("th", { scope: "row" }, name), h("td", { class: "num" }, formatNumber(value)))), ["Feature", "Value"])
      : h("p", {}, "No features yet."),
  ));
  const attributes = Object.entries(customer.attributes || {});
  if (attributes.length) {
    container.append(h("section", { "aria-labelledby": "attributes-title" },
      h("h2", { id: "attributes-title" }, "Attributes"),
      table("Imported attributes", attributes.map(([name, value]) => h("tr", {},
        h("th", { scope: "row" }, name), h("td", {}, typeof value === "object" ? JSON.stringify(value) : String(value)))),
      ["Attribute", "Value"]),
    ));
  }
}
