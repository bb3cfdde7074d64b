/** Short notices (toasts) and announcements for screen readers. */

import { append, h } from "./dom.js";
import { t } from "./i18n.js";
import { icon } from "./icons.js";

/** When each notice shown goes (a notice said again stays longer). */
const expiry = new WeakMap();
/** What each notice says (its text is added a moment after the notice itself). */
const texts = new WeakMap();

/**
 * How long after a notice is in the page its words are: a screen reader reads what is
 * added to a live region it already knows, not a region that comes with its text in it.
 */
const FILL_AFTER_MS = 100;

/**
 * Make the notices' container a polite live region, present from the start (called once,
 * at start): each notice's words are then an addition to it, which is read.
 */
export function setUpNotices() {
  document.getElementById("notices")?.setAttribute("aria-live", "polite");
}

/**
 * Show a notice for a few seconds (errors stay a little longer). The same notice while it
 * is shown is not added again, only kept longer: texts refused in a burst each report the
 * same refusal, which is one thing to read (and for a screen reader, to hear) once.
 * `lang`: the text's language when it is not the page's (the server's own words).
 *
 * The notice goes in empty (an error as an empty alert, so that its words are read at
 * once, and once), and unseen, its words and its button a moment later.
 */
export function notify(text, { kind = "info", timeout, lang = null } = {}) {
  const region = document.getElementById("notices");
  if (!region || !text) return;
  const delay = timeout ?? (kind === "error" ? 8000 : 5000);
  const shown = [...region.children].find(
    (other) => other.classList.contains(`notice-${kind}`) && texts.get(other) === text,
  );
  if (shown) {
    clearTimeout(expiry.get(shown));
    expiry.set(shown, setTimeout(() => shown.remove(), delay));
    return;
  }
  const item = h("div", {
    class: `notice notice-${kind}`,
    role: kind === "error" ? "alert" : null,
    style: "opacity: 0",
  });
  texts.set(item, text);
  region.append(item);
  setTimeout(() => {
    append(item, [
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
    ]);
    item.style.removeProperty("opacity");
  }, FILL_AFTER_MS);
  // Keep the stack short.
  while (region.children.length > 4) region.firstElementChild.remove();
  expiry.set(item, setTimeout(() => item.remove(), delay));
}

let queue = [];
let timer = null;

/**
 * Say something through the polite live region. Bursts of messages (a replay after
 * reconnecting) are summed up instead of read one by one; `message: false` for what is not
 * a message (the connection's state), which is said as it is.
 */
export function announce(text, { message = true } = {}) {
  if (!text) return;
  queue.push({ text, message });
  if (timer === null) timer = setTimeout(flush, 300);
}

function flush() {
  const region = document.getElementById("announcer");
  const items = queue;
  queue = [];
  timer = null;
  if (!region) return;
  const messages = items.filter((item) => item.message).length;
  const summed = messages > 3;
  const said = items.filter((item) => !(summed && item.message)).map((item) => item.text);
  if (summed) said.push(t("announce.many", { count: messages }));
  region.replaceChildren(h("p", {}, said.join(" — ")));
}
