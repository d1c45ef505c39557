// Small DOM helpers: elements are built with textContent only, so no service text is ever
// parsed as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/**
 * Create an element: h("li", {class: "x", dataset: {id: 1}, onclick: f}, "text", child).
 * Attributes named on* become listeners; `dataset` and `style` objects are assigned.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "style") Object.assign(element.style, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An icon from the sprite in index.html. */
export function icon(name, extraClass = "") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", `icon ${extraClass}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export function show(element, visible = true) {
  element.hidden = !visible;
}

/** A short notice in the corner that goes away by itself. */
export function toast(message, kind = "info", ms = 5000) {
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  $("#toasts").append(item);
  setTimeout(() => item.remove(), ms);
}

/** Show `message` in an error box (or hide it when empty). */
export function setError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

export function percent(value, digits = 0) {
  return `${(value * 100).toFixed(digits)}%`;
}

/** A probability as a percentage that never rounds to a false 0 % or 100 %. */
export function probabilityText(p, digits = 1) {
  const floor = 10 ** -(digits + 2);
  if (p >= 1 - floor) return `>${(100 - 100 * floor).toFixed(digits)}%`;
  if (p <= floor) return `<${(100 * floor).toFixed(digits)}%`;
  return percent(p, digits);
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Ask the user to confirm; resolves to true or false. */
export function confirmDialog(title, text, okLabel) {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dialog.hidden = false;
  $("#confirm-cancel").focus();
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.hidden = true;
      $("#confirm-ok").onclick = null;
      $("#confirm-cancel").onclick = null;
      dialog.onkeydown = null;
      resolve(answer);
    };
    $("#confirm-ok").onclick = () => done(true);
    $("#confirm-cancel").onclick = () => done(false);
    dialog.onkeydown = (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        done(false);
      }
    };
  });
}
