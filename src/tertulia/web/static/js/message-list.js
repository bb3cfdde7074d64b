/**
 * The conversation's rows, kept in step with the store.
 *
 * Rendering is keyed: each row has a key and a signature of what it shows; a render only
 * rebuilds rows whose signature changed and moves the others into place, so media keep
 * playing, focus stays put and screen readers are not told about old messages again.
 *
 * Keyboard: the list is one tab stop (roving tabindex): the row last in focus, else the
 * newest. Arrow keys, Home and End move between rows, from a row or from a button or link
 * in it; R replies to the message. Tab from a row reaches its buttons and links (a bot's
 * options, Reply), which are in the tab order only while the focus is in that row: so
 * Shift+Tab from the message box comes back to the row itself, not to its last button.
 *
 * A window: while the reader follows the newest messages, only the newest KEEP rows stay
 * on the page (a long visit would otherwise make every new message cost the layout and
 * paint of thousands of rows). The older ones leave it once KEEP_SLACK more have come, and
 * come back on request: `reveal()` ("Load earlier messages" before any request to the
 * server) or a jump to one of them. A reader scrolled up keeps every row shown.
 */

import { h, placeChildren, prefersReducedMotion } from "./dom.js";
import { formatDay, language, t } from "./i18n.js";
import {
  dayRow,
  messageRow,
  nameOf,
  pendingRow,
  quoteInfo,
  systemRow,
  systemText,
} from "./message-view.js";

/** Rows kept on the page while the reader follows the newest messages (see above). */
const KEEP = 500;
/** How many more may come before the oldest leave (not at every message). */
const KEEP_SLACK = 100;
/** Rows brought back by one `reveal()`. */
const REVEAL = 200;

/** Messages of one sender closer than this form one group (one name, one avatar). */
const GROUP_GAP_MS = 5 * 60 * 1000;

const CONTROLS = "button, a[href], audio, video";

/**
 * Put a row in the tab order or take it out; its controls too with `controls` (while the
 * focus is in the row).
 */
function setActive(row, active, controls = false) {
  row.tabIndex = active ? 0 : -1;
  for (const control of row.querySelectorAll(CONTROLS)) control.tabIndex = controls ? 0 : -1;
}

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

export class MessageList {
  /**
   * @param {import("./store.js").ConversationStore} store
   * @param {object} actions reply(message), option(message, text), retry(localId),
   *   discard(localId); jump(id) (default: jumpTo, for loaded messages only)
   */
  constructor(store, actions) {
    this.store = store;
    this.actions = { jump: (id) => this.jumpTo(id), ...actions };
    this.connected = false;
    /** key -> {sig, node} */
    this.cache = new Map();
    this.activeKey = null;
    this.activeNode = null;
    /** Key of the first entry shown (null: from the first); entries before it are hidden. */
    this.fromKey = null;
    /** How many entries are hidden above the first row shown. */
    this.hidden = 0;
    this.revealing = 0;
    this.entryCount = 0;
    this.el = h("ol", {
      class: "messages",
      "aria-label": t("messages.label"),
      "aria-describedby": "messages-help",
    });
    this.el.addEventListener("keydown", (event) => this.#onKey(event));
    this.el.addEventListener("focusin", (event) => {
      const row = event.target.closest?.("li.row");
      if (!row) return;
      if (row.dataset.key !== this.activeKey) {
        this.activeKey = row.dataset.key;
        this.#applyRoving();
      }
      setActive(row, true, true);
    });
    // Leaving the row (for another, or out of the list): its controls leave the tab order.
    this.el.addEventListener("focusout", (event) => {
      const row = event.target.closest?.("li.row");
      if (row && !row.contains(event.relatedTarget)) setActive(row, row === this.activeNode);
    });
  }

  /** Entries in display order: confirmed messages, then mine still pending. */
  #entries() {
    const entries = this.store.messages.map((message) => ({
      kind: message.type === "S" ? "system" : "message",
      message,
      sender: message.sender_id ?? null,
      date: new Date(message.time),
    }));
    for (const entry of this.store.pending.values()) {
      entries.push({ kind: "pending", entry, sender: this.store.me, date: new Date(entry.time) });
    }
    // Group consecutive messages of one sender on one day, close in time.
    let previous = null;
    for (const item of entries) {
      item.day = dayKey(item.date);
      item.groupStart =
        item.kind === "system" ||
        !previous ||
        previous.kind === "system" ||
        previous.sender !== item.sender ||
        previous.day !== item.day ||
        item.date - previous.date > GROUP_GAP_MS;
      if (previous) previous.groupEnd = item.groupStart || previous.day !== item.day;
      previous = item;
    }
    if (previous) previous.groupEnd = true;
    return entries;
  }

  /** The key of an entry's row. */
  #keyOf(item) {
    return item.kind === "pending" ? `p:${item.entry.localId}` : `m:${item.message.id}`;
  }

  /**
   * Bring the DOM in line with the store. With `follow` (the reader is at the newest
   * message), new messages may push the oldest rows off the page.
   */
  render({ follow = false } = {}) {
    const lang = language();
    const focusedKey = this.el.contains(document.activeElement)
      ? document.activeElement.closest("li[data-key]")?.dataset.key
      : null;
    const entries = this.#entries();
    let start = 0;
    if (this.fromKey !== null) {
      start = Math.max(0, entries.findIndex((item) => this.#keyOf(item) === this.fromKey));
    }
    start = Math.max(0, start - this.revealing);
    this.revealing = 0;
    const grew = entries.length > this.entryCount;
    this.entryCount = entries.length;
    if (follow && grew && !focusedKey && entries.length - start > KEEP + KEEP_SLACK) {
      start = entries.length - KEEP;
    }
    this.fromKey = start > 0 ? this.#keyOf(entries[start]) : null;
    this.hidden = start;
    const wanted = [];
    let lastDay = null;
    for (const item of entries.slice(start)) {
      if (item.day !== lastDay) {
        lastDay = item.day;
        const key = `d:${item.day}`;
        wanted.push({
          key,
          sig: `${lang}|${formatDay(item.date)}`,
          build: () => dayRow(item.date, key),
        });
      }
      wanted.push(this.#describe(item, lang));
    }
    const nodes = wanted.map(({ key, sig, build }) => {
      const cached = this.cache.get(key);
      if (cached && cached.sig === sig) return cached.node;
      const node = build();
      if (node.classList.contains("row")) setActive(node, false);
      this.cache.set(key, { sig, node });
      return node;
    });
    const keep = new Set(wanted.map((w) => w.key));
    for (const key of this.cache.keys()) if (!keep.has(key)) this.cache.delete(key);

    placeChildren(this.el, nodes);
    if (focusedKey && !this.el.contains(document.activeElement)) {
      this.cache.get(focusedKey)?.node.focus({ preventScroll: true });
    }
    // While the person is elsewhere, the list's tab stop follows the newest row.
    this.#applyRoving(!this.el.contains(document.activeElement));
  }

  #describe(item, lang) {
    const store = this.store;
    if (item.kind === "system") {
      const { message } = item;
      return {
        key: this.#keyOf(item),
        sig: `${lang}|${systemText(message, store)}`,
        build: () => systemRow(message, { store }),
      };
    }
    const quotedId = item.kind === "pending" ? item.entry.quotedId : item.message.quoted_message_id;
    const quote = quoteInfo(store, quotedId);
    const shared = JSON.stringify([lang, item.groupStart, item.groupEnd, quote]);
    const ctx = {
      store,
      actions: this.actions,
      groupStart: item.groupStart,
      groupEnd: item.groupEnd,
      quote,
    };
    if (item.kind === "pending") {
      const { entry } = item;
      const error = entry.error ? JSON.stringify(entry.error) : "";
      return {
        key: this.#keyOf(item),
        sig: [shared, entry.type, entry.status, entry.held ?? "", error, this.connected].join("|"),
        build: () => pendingRow(entry, { ...ctx, connected: this.connected }),
      };
    }
    const { message } = item;
    const sender = store.participant(message.sender_id);
    // (a newer prompt disables the options of the one before: its row is rebuilt)
    const optionsLive = store.optionsMessage === message;
    return {
      key: this.#keyOf(item),
      sig: `${shared}|${nameOf(store, message.sender_id)}|${sender?.type ?? ""}|${optionsLive}`,
      build: () => messageRow(message, { ...ctx, optionsLive }),
    };
  }

  /**
   * One row (the active one) and its controls are in the tab order; the rest are not.
   * New rows are built inactive, so only the old and the new active row are touched.
   */
  #applyRoving(followNewest = false) {
    if (followNewest || !this.activeKey || !this.cache.has(this.activeKey)) {
      const last = this.el.lastElementChild;
      this.activeKey = last?.classList.contains("row") ? last.dataset.key : null;
    }
    const node = this.activeKey ? (this.cache.get(this.activeKey)?.node ?? null) : null;
    if (node === this.activeNode) return;
    if (this.activeNode) setActive(this.activeNode, false);
    if (node) setActive(node, true, node.contains(document.activeElement));
    this.activeNode = node;
  }

  #onKey(event) {
    const row = event.target.closest?.("li.row");
    if (!row || event.altKey || event.ctrlKey || event.metaKey) return;
    // From the row or a button or link in it (a player keeps its keys: seeking, volume).
    const onRow = event.target === row || event.target.matches("button, a[href]");
    const rows = [...this.el.querySelectorAll("li.row")];
    const index = rows.indexOf(row);
    let target = null;
    if (event.key === "ArrowUp" && onRow) target = rows[index - 1];
    else if (event.key === "ArrowDown" && onRow) target = rows[index + 1];
    else if (event.key === "Home" && onRow) target = rows[0];
    else if (event.key === "End" && onRow) target = rows[rows.length - 1];
    else if ((event.key === "r" || event.key === "R") && onRow && row.dataset.id) {
      const message = this.store.get(row.dataset.id);
      if (message && message.type !== "S") {
        event.preventDefault();
        this.actions.reply(message);
      }
      return;
    }
    if (target) {
      event.preventDefault();
      this.focusRow(target);
    }
  }

  focusRow(row) {
    row.focus({ preventScroll: true }); // the focusin handler makes it the active row
    row.scrollIntoView({ block: "nearest" });
  }

  /** Focus the newest row (the button that jumps to new messages). */
  focusLast() {
    const rows = this.el.querySelectorAll("li.row");
    if (rows.length) this.focusRow(rows[rows.length - 1]);
  }

  /** Bring back (at the next render) up to `count` of the rows hidden above. */
  reveal(count = REVEAL) {
    this.revealing += count;
  }

  /**
   * Scroll to a message, flash it and focus it; false when it is not loaded. Smoothly,
   * unless `instant` (a message just loaded far up) or the person prefers less motion.
   * One loaded but off the page (above the window) is brought back first.
   */
  jumpTo(id, { instant = false } = {}) {
    const selector = `li[data-id="${CSS.escape(id)}"]`;
    let row = this.el.querySelector(selector);
    if (!row && this.hidden && this.store.get(id)) {
      this.fromKey = `m:${id}`;
      this.render();
      row = this.el.querySelector(selector);
      instant = true; // (far up, as one just loaded)
    }
    if (!row) return false;
    row.focus({ preventScroll: true });
    const smooth = !instant && !prefersReducedMotion();
    row.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
    row.classList.remove("flash");
    // Restart the highlight animation even when jumping to the same row twice.
    void row.offsetWidth;
    row.classList.add("flash");
    return true;
  }

  /** Update an upload's bar in place (no rebuild for every progress event). */
  updateProgress(entry) {
    const row = this.cache.get(`p:${entry.localId}`)?.node;
    const percent = Math.round((entry.progress ?? 0) * 100);
    const bar = row?.querySelector("progress");
    if (bar) bar.value = percent;
    const label = row?.querySelector(".status-text");
    if (label && entry.status === "uploading")
      label.textContent = t("status.uploading", { percent });
  }

  relabel() {
    this.el.setAttribute("aria-label", t("messages.label"));
    this.render();
  }
}
