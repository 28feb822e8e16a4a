// Settings: alert rules, delivery channels (with a test-send), users and roles, API keys.
// Everyone can read the rules and channels; changing anything here is for admins and owners.

import { clear, field, formatTime, h, notify, select } from "../dom.js";

const ROLES = [["viewer", "Viewer"], ["analyst", "Analyst"], ["admin", "Admin"], ["owner", "Owner"]];
const SCOPES = [["read", "Read"], ["events:write", "Send events"], ["predictions", "Score"]];
const CHANNEL_KINDS = [["webhook", "Webhook"], ["slack", "Slack"], ["discord", "Discord"], ["email", "E-mail"]];
const DELIVERY_MODES = [["immediate", "Immediately"], ["hourly", "Hourly digest"], ["daily", "Daily digest"]];

function section(id, title, ...children) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

function number(name, value, { min, max, step }) {
  return h("input", { type: "number", name, value, min, max, step, required: true });
}

/** A value shown once (a secret): selectable text and a note that it will not be shown again. */
function shownOnce(label, value) {
  return h("div", { class: "secret", role: "status" },
    h("p", {}, `${label} (shown only now; keep it somewhere safe):`),
    h("code", { class: "secret-value" }, value));
}

async function failSafe(label, action) {
  try {
    await action();
  } catch (error) {
    notify(`${label} failed: ${error.message}`, "error");
  }
}

export async function settingsPage(container, { session }) {
  const admin = session.can("admin");
  container.append(h("h1", {}, "Settings"));
  if (!admin) container.append(h("p", { class: "hint" }, "Only admins and owners can change settings."));
  const rules = h("div");
  const channels = h("div");
  container.append(section("rules-title", "Alert rules", rules), section("channels-title", "Channels", channels));
  const users = h("div");
  const keys = h("div");
  if (admin) container.append(section("users-title", "Users and roles", users), section("keys-title", "API keys", keys));

  async function loadRules() {
    const current = await session.get("/v1/alert-rules");
    const high = number("high_risk_threshold", current.high_risk_threshold, { min: 0.01, max: 1, step: 0.01 });
    const exit = h("input", { type: "number", name: "high_exit_threshold", min: 0, max: 0.99, step: 0.01, value: current.high_exit_threshold ?? "" });
    const increase = number("risk_increase_threshold", current.risk_increase_threshold, { min: 0.01, max: 1, step: 0.01 });
    const cooldown = number("cooldown_minutes", current.cooldown_minutes, { min: 0, max: 525600, step: 1 });
    const timezone = h("input", { type: "text", name: "timezone", value: current.timezone, maxlength: 64, required: true });
    const quietStart = h("input", { type: "time", name: "quiet_start", value: current.quiet_hours ? current.quiet_hours.start.slice(0, 5) : "" });
    const quietEnd = h("input", { type: "time", name: "quiet_end", value: current.quiet_hours ? current.quiet_hours.end.slice(0, 5) : "" });
    const controls = [high, exit, increase, cooldown, timezone, quietStart, quietEnd];
    for (const control of controls) control.disabled = !admin;
    const form = h("form", { class: "grid-form" },
      field("High risk at (probability)", high),
      field("Leave the high band below", exit, "Empty: the same as the threshold"),
      field("Risk increase of at least", increase),
      field("Cooldown per customer (minutes)", cooldown),
      field("Time zone", timezone),
      field("Quiet hours from", quietStart),
      field("Quiet hours until", quietEnd),
      admin ? h("button", { type: "submit" }, "Save rules") : null,
      current.updated_at ? h("p", { class: "hint" }, `Last changed ${formatTime(current.updated_at)}`) : null,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      failSafe("Saving the rules", async () => {
        await session.put("/v1/alert-rules", {
          high_risk_threshold: Number(high.value),
          high_exit_threshold: exit.value === "" ? null : Number(exit.value),
          risk_increase_threshold: Number(increase.value),
          cooldown_minutes: Number(cooldown.value),
          timezone: timezone.value,
          quiet_hours: quietStart.value && quietEnd.value ? { start: quietStart.value, end: quietEnd.value } : null,
        });
        notify("Alert rules saved");
        await loadRules();
      });
    });
    clear(rules, form);
  }

  async function loadChannels() {
    const list = await session.get("/v1/alert-channels");
    const rows = list.items.map((channel) => {
      const result = h("span", { class: "test-result", "aria-live": "polite" });
      const buttons = [];
      if (admin) {
        buttons.push(
          h("button", { type: "button", class: "secondary", "aria-label": `Send a test to ${channel.name}`, on: { click: () => failSafe("The test", async () => {
            result.textContent = "sending…";
            const outcome = await session.post(`/v1/alert-channels/${encodeURIComponent(channel.id)}/test`);
            result.textContent = outcome.delivered
              ? `Delivered (${outcome.status_code ?? "ok"}, ${outcome.duration_ms} ms)`
              : `Not delivered: ${outcome.error || outcome.outcome}`;
          }) } }, "Send a test"),
          channel.disabled_at ? h("button", { type: "button", class: "secondary", on: { click: () => failSafe("Enabling", async () => {
            await session.post(`/v1/alert-channels/${encodeURIComponent(channel.id)}/enable`);
            await loadChannels();
          }) } }, "Enable") : null,
          h("button", { type: "button", class: "secondary", "aria-label": `Delete ${channel.name}`, on: { click: () => failSafe("Deleting", async () => {
            await session.request("DELETE", `/v1/alert-channels/${encodeURIComponent(channel.id)}`);
            notify(`Channel ${channel.name} deleted`);
            await loadChannels();
          }) } }, "Delete"),
        );
      }
      return h("tr", {},
        h("th", { scope: "row" }, channel.name),
        h("td", {}, channel.kind),
        h("td", { class: "wrap" }, channel.kind === "email" ? (channel.recipients || []).join(", ") : channel.url),
        h("td", {}, channel.delivery_mode || "immediate"),
        h("td", {}, channel.disabled_at ? `Disabled: ${channel.disabled_reason || ""}` : "Active"),
        h("td", {}, h("div", { class: "actions" }, buttons), result),
      );
    });
    const parts = [list.items.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "data", id: "channels-table" },
        h("caption", { class: "visually-hidden" }, "Alert channels"),
        h("thead", {}, h("tr", {}, ["Name", "Kind", "Destination", "Delivery", "State", "Actions"].map((label) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, rows)))
      : h("p", {}, "No channels: alerts appear here and on the live feed only.")];
    if (admin) parts.push(channelForm());
    clear(channels, parts);
  }

  function channelForm() {
    const name = h("input", { type: "text", name: "name", maxlength: 200 });
    const kind = select("kind", CHANNEL_KINDS, "webhook");
    const url = h("input", { type: "url", name: "url", maxlength: 2048 });
    const recipients = h("input", { type: "text", name: "recipients", placeholder: "a@example.com, b@example.com" });
    const mode = select("delivery_mode", DELIVERY_MODES, "immediate");
    const secret = h("div");
    const form = h("form", { class: "grid-form", "aria-labelledby": "new-channel-title" },
      h("h3", { id: "new-channel-title" }, "Add a channel"),
      field("Name", name), field("Kind", kind), field("URL", url, "Webhook, Slack or Discord URL"),
      field("Recipients", recipients, "E-mail channels: comma-separated addresses"),
      field("Delivery", mode),
      h("button", { type: "submit" }, "Add channel"),
      secret,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      failSafe("Adding the channel", async () => {
        const body = { kind: kind.value, delivery_mode: mode.value, name: name.value || null };
        if (kind.value === "email") body.recipients = recipients.value.split(",").map((item) => item.trim()).filter(Boolean);
        else body.url = url.value;
        const created = await session.post("/v1/alert-channels", body);
        await loadChannels();
        if (created.kind === "webhook") {
          channels.append(shownOnce(`Signing secret of ${created.name}`, created.secret));
        }
        notify(`Channel ${created.name} added`);
      });
    });
    return form;
  }

  async function loadUsers() {
    const page = await session.get("/v1/users", { limit: 200 });
    const rows = page.items.map((user) => {
      const role = select("role", ROLES, user.role);
      role.setAttribute("aria-label", `Role of ${user.email}`);
      const self = session.user && user.id === session.user.id;
      role.disabled = self;
      role.addEventListener("change", () => failSafe("Changing the role", async () => {
        await session.request("PATCH", `/v1/users/${encodeURIComponent(user.id)}`, { body: { role: role.value } });
        notify(`${user.email} is now ${role.value}`);
        await loadUsers();
      }));
      const toggle = self ? null : h("button", { type: "button", class: "secondary", on: { click: () => failSafe("Updating the user", async () => {
        await session.request("PATCH", `/v1/users/${encodeURIComponent(user.id)}`, { body: { active: !user.active } });
        await loadUsers();
      }) } }, user.active ? "Deactivate" : "Reactivate");
      return h("tr", { dataset: { email: user.email } },
        h("th", { scope: "row" }, user.email, self ? " (you)" : ""),
        h("td", {}, role),
        h("td", {}, user.active ? "Active" : "Deactivated"),
        h("td", {}, formatTime(user.created_at)),
        h("td", {}, toggle),
      );
    });
    const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
    const password = h("input", { type: "password", name: "password", required: true, minlength: 12, autocomplete: "new-password" });
    const role = select("role", ROLES, "analyst");
    const form = h("form", { class: "grid-form", "aria-labelledby": "new-user-title" },
      h("h3", { id: "new-user-title" }, "Add a user"),
      field("E-mail", email), field("Initial password", password), field("Role", role),
      h("button", { type: "submit" }, "Add user"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      failSafe("Adding the user", async () => {
        await session.post("/v1/users", { email: email.value, password: password.value, role: role.value });
        notify(`${email.value} added`);
        await loadUsers();
      });
    });
    clear(users,
      h("div", { class: "table-wrap" }, h("table", { class: "data", id: "users-table" },
        h("caption", { class: "visually-hidden" }, "Users"),
        h("thead", {}, h("tr", {}, ["E-mail", "Role", "State", "Added", "Actions"].map((label) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, rows))),
      form,
    );
  }

  async function loadKeys(created) {
    const list = await session.get("/v1/api-keys");
    const rows = list.items.map((key) => h("tr", {},
      h("th", { scope: "row" }, key.name),
      h("td", {}, key.scopes.join(", ")),
      h("td", {}, formatTime(key.created_at)),
      h("td", {}, formatTime(key.last_used_at)),
      h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Revoke ${key.name}`, on: { click: () => failSafe("Revoking", async () => {
        await session.request("DELETE", `/v1/api-keys/${encodeURIComponent(key.id)}`);
        notify(`Key ${key.name} revoked`);
        await loadKeys();
      }) } }, "Revoke")),
    ));
    const name = h("input", { type: "text", name: "name", required: true, maxlength: 200 });
    const boxes = SCOPES.map(([scope, label]) => {
      const box = h("input", { type: "checkbox", name: "scopes", value: scope, id: `scope-${scope.replace(":", "-")}` });
      if (scope === "read") box.checked = true;
      return h("span", { class: "check" }, box, h("label", { for: box.id }, label));
    });
    const form = h("form", { class: "grid-form", "aria-labelledby": "new-key-title" },
      h("h3", { id: "new-key-title" }, "Create a key"),
      field("Name", name),
      h("fieldset", {}, h("legend", {}, "Scopes"), boxes),
      h("button", { type: "submit" }, "Create key"),
      h("p", { class: "hint" }, "A revoked key stops working within a minute (the gateway caches keys that long)."),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const scopes = [...form.querySelectorAll("input[name=scopes]:checked")].map((box) => box.value);
      failSafe("Creating the key", async () => {
        const key = await session.post("/v1/api-keys", { name: name.value, scopes });
        await loadKeys(key);
      });
    });
    clear(keys,
      created ? shownOnce(`The key ${created.name}`, created.key) : null,
      list.items.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data", id: "keys-table" },
          h("caption", { class: "visually-hidden" }, "API keys"),
          h("thead", {}, h("tr", {}, ["Name", "Scopes", "Created", "Last used", "Actions"].map((label) => h("th", { scope: "col" }, label)))),
          h("tbody", {}, rows)))
        : h("p", {}, "No API keys."),
      form,
    );
  }

  await Promise.all([loadRules(), loadChannels(), admin ? loadUsers() : null, admin ? loadKeys() : null]);
}
