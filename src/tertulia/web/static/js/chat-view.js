/**
 * The conversation screen: header, messages, participants, composer, connection and
 * end-of-conversation notices, drag and drop. It renders the session's store and turns
 * clicks and keys into session calls.
 */

import { Composer } from "./composer.js";
import { bdi, h, srOnly } from "./dom.js";
import { formatDuration, partsText, t, tParts, translate } from "./i18n.js";
import { icon } from "./icons.js";
import { languagePicker } from "./language-picker.js";
import { MessageList } from "./message-list.js";
import { errorLanguage, errorText, nameOf, systemText } from "./message-view.js";
import { announce, notify } from "./notices.js";
import { download, transcript } from "./transcript.js";
import { renderParticipants, workingParts } from "./participants.js";
import { isolated, snippet } from "./text.js";

/** Closer than this to the bottom counts as "at the bottom": new messages scroll into view. */
const STICK_PX = 80;
const WIDE = "(min-width: 900px)";

export class ChatView {
  /**
   * @param {import("./session.js").ChatSession} session
   * @param {{onLeave: () => void, onLost: (reason: string) => void}} callbacks
   */
  constructor(session, { onLeave, onLost }) {
    this.session = session;
    this.store = session.store;
    this.onLeave = onLeave;
    this.onLost = onLost;
    this.stick = true;
    this.unseen = 0;
    /** The animation frame a render waits for (0: none). */
    this.frame = 0;
    /** Messages from others that arrived while the page was hidden (shown in its title). */
    this.unread = 0;
    this.connection = { state: "connecting" };
    this.wasDisconnected = false;
    /** The connection's state last said to screen readers (null: none since it was open). */
    this.saidConnection = null;
    /** The panel is beside the conversation on wide screens, over it on narrow ones. */
    this.wide = window.matchMedia(WIDE);
    this.peopleOpen = this.wide.matches;
    this.list = new MessageList(this.store, {
      reply: (message) => this.composer.setReply(message),
      option: (message, option) => {
        this.session.chooseOption(message, option);
        this.#stickToBottom();
      },
      retry: (localId, how) => this.session.retry(localId, how),
      discard: (localId) => this.session.discard(localId),
      jump: (id) => this.#jump(id),
    });
    this.composer = new Composer(session);
    this.#build();
    this.#listen();
    this.render();
  }

  #build() {
    this.titleEl = h("h1", { class: "title", id: "chat-title" });
    this.subtitleEl = h("p", { class: "subtitle" });
    // (its name, with the count it shows, is set as it renders)
    this.peopleButton = h(
      "button",
      {
        type: "button",
        class: "icon-button people-toggle",
        "aria-controls": "participants",
        "data-i18n-title": "participants.toggle",
        title: t("participants.toggle"),
        onclick: () => this.#togglePeople(),
      },
      icon("people"),
      h("span", { class: "count" }),
    );
    this.saveButton = h(
      "button",
      {
        type: "button",
        class: "icon-button save",
        "data-i18n-aria-label": "action.save_transcript",
        "data-i18n-title": "action.save_transcript",
        "aria-label": t("action.save_transcript"),
        title: t("action.save_transcript"),
        onclick: () => this.#saveTranscript(),
      },
      icon("download"),
    );
    const header = (this.header = h(
      "header",
      { class: "topbar" },
      h(
        "button",
        {
          type: "button",
          class: "icon-button back",
          "data-i18n-aria-label": "action.back_to_lobby",
          "data-i18n-title": "action.back_to_lobby",
          "aria-label": t("action.back_to_lobby"),
          title: t("action.back_to_lobby"),
          onclick: () => this.onLeave(),
        },
        icon("back"),
      ),
      h("div", { class: "title-block" }, this.titleEl, this.subtitleEl),
      languagePicker(),
      this.saveButton,
      this.peopleButton,
    ));

    // Not a live region: its countdown changes every second. What it says is announced
    // once per change of state instead (#sayConnection).
    this.connectionBanner = h("div", { class: "banner banner-connection", hidden: true });
    this.endedBanner = h("div", { class: "banner banner-ended", role: "status", hidden: true });
    this.olderButton = h(
      "button",
      {
        type: "button",
        class: "older",
        hidden: true,
        "data-i18n": "history.older",
        onclick: () => this.#loadOlder(),
      },
      t("history.older"),
    );
    this.scroller = h(
      "div",
      { class: "scroller" },
      this.olderButton,
      h(
        "p",
        { id: "messages-help", class: "sr-only", "data-i18n": "messages.help" },
        t("messages.help"),
      ),
      this.list.el,
    );
    this.jumpButton = h("button", {
      type: "button",
      class: "jump-new",
      hidden: true,
      onclick: () => {
        this.#stickToBottom();
        this.render(); // the newest row may still wait for its frame
        this.list.focusLast();
      },
    });
    this.workingEl = h("div", { class: "working", role: "status" });
    this.dropOverlay = h(
      "div",
      { class: "drop-overlay", hidden: true, "aria-hidden": "true" },
      h("span", { "data-i18n": "composer.drop" }, t("composer.drop")),
    );
    // The page's main landmark (the participants panel beside it is one of its own).
    this.timeline = h(
      "main",
      { class: "timeline", "aria-labelledby": "chat-title" },
      this.connectionBanner,
      this.endedBanner,
      this.scroller,
      this.jumpButton,
      this.workingEl,
      this.composer.el,
      this.dropOverlay,
    );

    this.peopleList = h("div", { class: "people-wrap" });
    this.peopleHeading = h(
      "h2",
      {
        class: "panel-title",
        id: "participants-heading",
        tabindex: "-1",
        "data-i18n": "participants.title",
      },
      t("participants.title"),
    );
    this.panel = h(
      "aside",
      { id: "participants", class: "participants", "aria-labelledby": "participants-heading" },
      h(
        "div",
        // (the panel is named by its heading, not by the close button beside it too)
        { class: "panel-head" },
        this.peopleHeading,
        h(
          "button",
          {
            type: "button",
            class: "icon-button panel-close",
            "data-i18n-aria-label": "action.close",
            "aria-label": t("action.close"),
            onclick: () => this.#togglePeople(false),
          },
          icon("close"),
        ),
      ),
      this.peopleList,
    );
    this.skipLink = h(
      "a",
      { class: "skip-link", href: "#composer-input", "data-i18n": "skip.composer" },
      t("skip.composer"),
    );
    this.el = h(
      "div",
      { class: "chat" },
      this.skipLink,
      header,
      h("div", { class: "chat-body" }, this.timeline, this.panel),
    );
  }

  #listen() {
    // On narrow screens the panel covers the conversation: Escape (wherever the focus is)
    // or a tap beside it closes it. What it covers is inert, so such a tap lands on the
    // chat itself, not on whatever lies under the panel's shadow. (A click, not a
    // pointerdown: the press that follows a pointerdown would take the focus away from
    // the button it goes back to. The click that opens the panel is not one beside it.)
    this.onKeyDown = (event) => {
      if (event.key === "Escape" && this.#covering()) {
        event.preventDefault();
        this.#togglePeople(false);
      }
    };
    document.addEventListener("keydown", this.onKeyDown);
    // The panel follows the width, as at load: open beside a wide conversation, closed
    // when the window becomes narrow (else it would cover the conversation unasked).
    this.onWidth = () => {
      const hadFocus = this.panel.contains(document.activeElement);
      this.peopleOpen = this.wide.matches;
      this.render();
      if (hadFocus && !this.peopleOpen) this.peopleButton.focus();
    };
    this.wide.addEventListener("change", this.onWidth);
    this.el.addEventListener("click", (event) => {
      const inside = this.panel.contains(event.target) || this.peopleButton.contains(event.target);
      if (this.#covering() && !inside) this.#togglePeople(false);
    });
    this.onStoreChange = (event) => this.#onStoreChange(event.detail);
    this.store.addEventListener("change", this.onStoreChange);
    this.session.addEventListener("connection", (event) => this.#onConnection(event.detail));
    this.session.addEventListener("notice", (event) =>
      notify(errorText(event.detail.error), {
        kind: event.detail.kind,
        lang: errorLanguage(event.detail.error),
      }),
    );
    this.session.addEventListener("lost", (event) => this.onLost(event.detail.reason));
    this.session.addEventListener("limits", (event) =>
      this.composer.applyLimits(event.detail.limits),
    );
    this.composer.el.addEventListener("submit", () => this.#stickToBottom());
    this.onVisibility = () => {
      if (document.visibilityState === "visible" && this.unread) {
        this.unread = 0;
        this.#setTitle();
      }
    };
    document.addEventListener("visibilitychange", this.onVisibility);

    let lastTop = 0;
    this.scroller.addEventListener(
      "scroll",
      () => {
        // Scroll events arrive late, after images may have grown the content again, so
        // "far from the bottom" alone does not mean the person scrolled away: only a move
        // up does. Our own scrolls only ever go down.
        const top = this.scroller.scrollTop;
        const movedUp = top < lastTop;
        lastTop = top;
        if (this.#distanceFromBottom() < STICK_PX) {
          this.stick = true;
          this.#setUnseen(0);
        } else if (movedUp) {
          this.stick = false;
        }
      },
      { passive: true },
    );
    // Images and players change height as they load: stay at the bottom if we were there.
    this.resizer = new ResizeObserver(() => {
      if (this.stick) this.#scrollToBottom();
    });
    this.resizer.observe(this.list.el);

    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
    this.timeline.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      this.dropOverlay.hidden = false;
    });
    this.timeline.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    this.timeline.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.dropOverlay.hidden = true;
    });
    this.timeline.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      this.dropOverlay.hidden = true;
      this.composer.stageFiles([...event.dataTransfer.files]);
    });
  }

  /** Called once the view is in the document. */
  mounted() {
    this.#scrollToBottom();
    this.composer.mounted();
    this.composer.focus();
  }

  destroy() {
    this.store.removeEventListener("change", this.onStoreChange);
    document.removeEventListener("visibilitychange", this.onVisibility);
    document.removeEventListener("keydown", this.onKeyDown);
    this.wide.removeEventListener("change", this.onWidth);
    cancelAnimationFrame(this.frame);
    this.resizer.disconnect();
    clearInterval(this.countdown);
    clearTimeout(this.connectingTimer);
    this.composer.destroy();
    this.session.stop();
  }

  relabel() {
    translate(this.el);
    this.list.relabel();
    this.composer.relabel();
    this.#setUnseen(this.unseen);
    this.render();
    this.#onConnection(this.connection);
  }

  #onStoreChange(detail) {
    if (detail.kind === "progress") {
      this.list.updateProgress(detail.entry);
      return;
    }
    if (detail.kind === "pending" && !detail.removed && detail.entry.status !== "failed") {
      this.stick = true;
    }
    this.#renderSoon();
    // A state frame may rename the person being replied to.
    if (detail.kind === "state") this.composer.refreshReply();
    if (detail.kind === "message" && detail.live) this.#onLiveMessage(detail.message);
  }

  /**
   * Render once before the next frame, however many store changes arrive until then: a
   * busy room or a page of history costs one render (which walks every row), not one per
   * message. Anything that reads the layout calls render() first, which renders now.
   */
  #renderSoon() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  #onLiveMessage(message) {
    // My own messages and my own comings and goings need no announcement.
    const about =
      message.type === "S" ? message.additional_metadata?.participant_id : message.sender_id;
    if (about && about === this.store.me) return;
    let text =
      message.type === "S"
        ? systemText(message, this.store)
        : t("announce.message", {
            name: nameOf(this.store, message.sender_id),
            text: snippet(message),
          });
    // A prompt says that it offers a choice ("Manager: Choose a bot:, 2 options"): its
    // buttons are read only once the person goes to it.
    const options = Array.isArray(message.options)
      ? message.options.filter((option) => typeof option === "string").length
      : 0;
    if (options) text = t("announce.with_options", { text, count: options });
    announce(text);
    if (!this.stick) this.#setUnseen(this.unseen + 1);
    // A hidden page is not rendered (no frames): its title, in the tab, says it at once.
    if (document.visibilityState === "hidden" && message.type !== "S") {
      this.unread += 1;
      this.#setTitle();
    }
  }

  #title() {
    return this.store.name || t("conversation.untitled");
  }

  /**
   * "(3) Name · Tertulia": the count of messages that came while the page was hidden. The
   * name is isolated (U+2068…U+2069): a right-to-left one keeps its "!" at its own end.
   */
  #setTitle() {
    const count = this.unread ? `(${this.unread}) ` : "";
    document.title = `${count}${isolated(this.#title())} · Tertulia`;
  }

  render() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.list.render({ follow: this.stick });
    const store = this.store;
    const title = this.#title();
    // (whole in its tooltip, where the header cuts it short)
    if (this.titleEl.title !== title) {
      this.titleEl.replaceChildren(bdi(title));
      this.titleEl.title = title;
    }
    this.#setTitle();
    this.#renderSubtitle();
    // The count it shows is in its name too (a name must hold what a label shows).
    const count = store.participants.size;
    this.peopleButton.querySelector(".count").textContent = String(count);
    this.peopleButton.setAttribute("aria-label", t("participants.toggle_count", { count }));
    this.peopleButton.setAttribute("aria-expanded", String(this.peopleOpen));
    this.el.classList.toggle("people-open", this.peopleOpen);
    // While the panel covers the conversation, what it covers can be neither focused nor
    // clicked (nor read by a screen reader's cursor): Tab stays in the panel.
    const covered = this.#covering();
    for (const part of [this.skipLink, this.header, this.timeline]) part.inert = covered;
    this.peopleList.replaceChildren(renderParticipants(store));

    // Live regions: what they say is replaced only when it changes (else a screen reader
    // would read it again at every render).
    const working = workingParts(store);
    if (say(this.workingEl, working)) {
      const dots = h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i"));
      this.workingEl.replaceChildren(...(working ? [dots, ...working] : []));
    }
    this.workingEl.hidden = !working;

    let ended = null;
    if (store.ended) {
      const id = store.ended.additional_metadata?.participant_id;
      ended = id
        ? tParts("ended.banner_by", { name: bdi(nameOf(store, id)) })
        : [t("ended.banner")];
    }
    if (say(this.endedBanner, ended)) {
      this.endedBanner.replaceChildren(...(ended ? [icon("alert"), h("span", {}, ended)] : []));
    }
    this.endedBanner.hidden = !store.ended;
    this.olderButton.hidden = !store.olderAvailable && !this.list.hidden;
    this.el.classList.toggle("is-offline", this.connection.state !== "open");
    if (this.stick) this.#scrollToBottom();
  }

  /**
   * "ECHO, سارة!, דוד · 2 online": the others' names, each isolated (right-to-left names
   * keep their order and their punctuation), and who is online.
   */
  #renderSubtitle() {
    const store = this.store;
    const parts = [];
    for (const p of store.participants.values()) {
      if (p.id === store.me) continue;
      if (parts.length) parts.push(", ");
      const name = bdi(p.name || t("someone"));
      // Who has left (a bot too) is named as such: the list is everyone who ever took part.
      parts.push(...(store.hasLeft(p.id) ? tParts("participants.left_name", { name }) : [name]));
    }
    if (store.online) {
      if (parts.length) parts.push(" · ");
      parts.push(t("participants.online_count", { count: store.online.size }));
    }
    if (partsText(parts) !== this.subtitleEl.textContent) this.subtitleEl.replaceChildren(...parts);
  }

  /** Say the connection's state (`kind`) to screen readers, once until it changes. */
  #sayConnection(kind, text) {
    if (this.saidConnection === kind) return;
    this.saidConnection = kind;
    announce(text, { message: false });
  }

  #onConnection(status) {
    const previous = this.connection.state;
    this.connection = status;
    clearInterval(this.countdown);
    clearTimeout(this.connectingTimer);
    const banner = this.connectionBanner;
    if (status.state === "open") {
      banner.hidden = true;
      if (this.wasDisconnected) notify(t("connection.back"));
      this.wasDisconnected = false;
      this.saidConnection = null;
    } else if (status.state === "connecting") {
      // Only say "connecting" when it takes a while: most connects are instant.
      if (previous !== "waiting") {
        this.connectingTimer = setTimeout(() => {
          banner.replaceChildren(
            h("span", { class: "spinner", "aria-hidden": "true" }),
            t("connection.connecting"),
          );
          banner.hidden = false;
          this.#sayConnection("connecting", t("connection.connecting"));
        }, 800);
      }
    } else if (status.state === "waiting") {
      this.wasDisconnected = true;
      let text;
      if (status.reason === "too_many") {
        // (no countdown: it connects once another tab closes, whenever that is)
        text = h("span", {}, t("connection.too_many"));
        this.#sayConnection("too_many", text.textContent);
      } else {
        // The countdown ("0:02", which would be read as a time of day) is for the eyes; a
        // screen reader finds the same in words, and is told once, when the wait begins,
        // not at every attempt of the same outage.
        const shown = h("span", { "aria-hidden": "true" });
        const words = srOnly("");
        const update = () => {
          const seconds = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
          shown.textContent = t("connection.waiting", { time: formatDuration(seconds) });
          words.textContent = t("connection.waiting_words", { count: seconds });
        };
        update();
        this.countdown = setInterval(update, 1000);
        text = h("span", {}, shown, words);
        this.#sayConnection("waiting", words.textContent);
      }
      banner.replaceChildren(
        icon("alert"),
        text,
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: () => this.session.connection.retryNow(),
          },
          t("connection.retry"),
        ),
      );
      banner.hidden = false;
    }
    this.list.connected = status.state === "open";
    this.render();
  }

  #distanceFromBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight;
  }

  #scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  #stickToBottom() {
    this.stick = true;
    this.#setUnseen(0);
    // Instantly: a smooth scroll's intermediate positions would read as "scrolled up".
    this.#scrollToBottom();
  }

  #setUnseen(count) {
    this.unseen = count;
    this.jumpButton.hidden = count === 0;
    this.jumpButton.replaceChildren(icon("down"), t("messages.new", { count }));
  }

  async #loadOlder() {
    const before = this.scroller.scrollHeight;
    if (this.list.hidden) {
      this.list.reveal(); // rows already here, off the page: no request
    } else if (!(await this.#loadingOlder(() => this.session.loadOlder()))) {
      return;
    }
    this.render();
    // Keep the messages in view where they were: older ones are added above.
    this.scroller.scrollTop += this.scroller.scrollHeight - before;
  }

  /** Bring a message into view; one earlier than the loaded history is loaded first. */
  async #jump(id) {
    const hidden = this.list.hidden;
    if (this.list.jumpTo(id)) {
      // Brought back from above the window: reading far up now (as below).
      if (this.list.hidden < hidden) this.stick = false;
      return;
    }
    const loading = async () => {
      while (!this.store.get(id) && this.store.olderAvailable) await this.session.loadOlder();
    };
    if (!(await this.#loadingOlder(loading))) return;
    // Reading far up now: neither this render nor new messages may pull the view down.
    this.stick = false;
    this.render();
    if (!this.list.jumpTo(id, { instant: true })) {
      notify(t("quote.unavailable"), { kind: "error" });
    }
  }

  /** Run `load` (earlier pages of history) with the button disabled; false if it failed. */
  async #loadingOlder(load) {
    this.olderButton.disabled = true;
    try {
      await load();
      return true;
    } catch {
      notify(t("history.failed"), { kind: "error" });
      return false;
    } finally {
      this.olderButton.disabled = false;
    }
  }

  /** Download the whole conversation as a text file (read again from the server). */
  async #saveTranscript() {
    this.saveButton.disabled = true;
    try {
      const { text, fileName } = await transcript(this.session.id, this.store);
      download(text, fileName);
    } catch {
      notify(t("transcript.failed"), { kind: "error" });
    } finally {
      this.saveButton.disabled = false;
    }
  }

  /** Whether the participants panel is open over the conversation (a narrow screen). */
  #covering() {
    return this.peopleOpen && !this.wide.matches;
  }

  #togglePeople(open = !this.peopleOpen) {
    this.peopleOpen = open;
    this.render();
    if (this.wide.matches) return;
    if (open) this.peopleHeading.focus();
    else this.peopleButton.focus();
  }
}

/** What each live region of the view says. */
const saying = new WeakMap();

/** Whether a live region is to say `parts` (null: nothing) now: only when it says else. */
function say(region, parts) {
  const text = parts ? partsText(parts) : "";
  if (saying.get(region) === text) return false;
  saying.set(region, text);
  return true;
}
