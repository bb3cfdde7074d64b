/**
 * Small DOM helpers.
 *
 * Everything that comes from the server is inserted as text (text nodes and attribute
 * values), never parsed as HTML, so a message can never inject markup into the page.
 */

/** Properties that must be set on the element rather than as attributes. */
const PROPERTIES = new Set(["value", "checked", "indeterminate", "muted"]);

/**
 * Build an element: `h("button", {class: "x", onclick: fn}, "label", child)`.
 * Attributes whose value is null, undefined or false are left out; `true` gives an
 * empty attribute; `on<event>` keys add listeners.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    // Through the CSSOM: a style attribute would be inline style, which the page's
    // Content-Security-Policy refuses.
    else if (key === "style") el.style.cssText = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, nested arrays; null and false are skipped). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * Make `parent`'s children exactly `nodes`, in that order, moving only those out of place
 * and removing the rest: a node kept (one with the keyboard's focus, say) is not taken out
 * and put back, as a rebuild would.
 */
export function placeChildren(parent, nodes) {
  let cursor = parent.firstChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(node, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

/**
 * A name or a text someone supplied, laid out apart from the words around it and in its
 * own direction: "سارة!" beside "joined" keeps its "!" at its own (left) end, and a list
 * of right-to-left names keeps its order.
 */
export function bdi(text) {
  return h("bdi", {}, text);
}

/** Text only visible to screen readers. */
export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}

/** Whether the person asked the system for less motion. */
export function prefersReducedMotion() {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}
