/** Short notices (toasts) and announcements for screen readers. */

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { icon } from "./icons.js";

/** When each notice shown goes (a notice said again stays longer). */
const expiry = new WeakMap();

/**
 * Show a notice for a few seconds (errors stay a little longer). The same notice while it
 * is shown is not added again, only kept longer: texts refused in a burst each report the
 * same refusal, which is one thing to read (and for a screen reader, to hear) once.
 * `lang`: the text's language when it is not the page's (the server's own words).
 */
export function notify(text, { kind = "info", timeout, lang = null } = {}) {
  const region = document.getElementById("notices");
  if (!region || !text) return;
  const delay = timeout ?? (kind === "error" ? 8000 : 5000);
  const shown = [...region.children].find(
    (other) =>
      other.classList.contains(`notice-${kind}`) &&
      other.querySelector(".notice-text")?.textContent === text,
  );
  if (shown) {
    clearTimeout(expiry.get(shown));
    expiry.set(shown, setTimeout(() => shown.remove(), delay));
    return;
  }
  const item = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    kind === "error" ? icon("alert") : null,
    h("span", { class: "notice-text", lang }, text),
    h(
      "button",
      {
        type: "button",
        class: "icon-button",
        "aria-label": t("action.dismiss"),
        onclick: () => item.remove(),
      },
      icon("close"),
    ),
  );
  region.append(item);
  // Keep the stack short.
  while (region.children.length > 4) region.firstElementChild.remove();
  expiry.set(item, setTimeout(() => item.remove(), delay));
}

let queue = [];
let timer = null;

/**
 * Say something through the polite live region. Bursts (a replay after reconnecting)
 * are summed up instead of read one by one.
 */
export function announce(text) {
  if (!text) return;
  queue.push(text);
  if (timer === null) timer = setTimeout(flush, 300);
}

function flush() {
  const region = document.getElementById("announcer");
  const items = queue;
  queue = [];
  timer = null;
  if (!region) return;
  const text = items.length > 3 ? t("announce.many", { count: items.length }) : items.join(" — ");
  region.replaceChildren(h("p", {}, text));
}
