// DOM building without HTML parsing: every piece of data becomes a text node or an attribute
// value set through the DOM API, so a customer id like <img src=x onerror=alert(1)> is text.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.setAttribute("class", value);
    else if (key === "text") element.textContent = String(value);
    else if (key === "on") {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on") || key === "style") {
      throw new Error(`refusing to set ${key}: use "on" handlers and CSS classes`);
    } else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("td", {class: "num"}, "12 %"). */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  apply(element, props);
  append(element, children);
  return element;
}

/** An SVG element (charts). */
export function s(tag, props, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  apply(element, props);
  append(element, children);
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const RISK_LABELS = { high: "High", medium: "Medium", low: "Low" };

/** A risk badge that says the level in words (colour is only a second signal). */
export function riskBadge(level, probability) {
  if (!level) return h("span", { class: "risk risk-none" }, "Not scored");
  const percent = typeof probability === "number" ? ` ${(probability * 100).toFixed(0)} %` : "";
  return h("span", { class: `risk risk-${level}` }, `${RISK_LABELS[level] || level}${percent}`);
}

export function formatTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatNumber(value, digits = 3) {
  if (typeof value !== "number" || Number.isNaN(value)) return value === null ? "—" : String(value);
  return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(digits);
}

/** A labelled form control: returns [label, control] wired by id. */
export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const parts = [h("label", { for: id }, labelText), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("span", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, value) {
  const element = h("select", { name });
  for (const [optionValue, label] of options) {
    const option = h("option", { value: optionValue }, label);
    if (optionValue === value) option.selected = true;
    element.append(option);
  }
  return element;
}

/** Announce a message to screen readers and show it briefly. */
export function notify(message, kind = "info") {
  const region = document.getElementById("toast");
  if (!region) return;
  const item = h("p", { class: `toast toast-${kind}` }, message);
  region.append(item);
  setTimeout(() => item.remove(), 6000);
}
