/**
 * The lobby: a nickname, the bots to invite, "start"; and, when the server has rooms on,
 * the open conversations to join (refreshed every few seconds while the lobby is shown),
 * or with rooms off the person's own conversations, to open again.
 */

import {
  SERVER_LANGUAGE,
  createConversation,
  detailText,
  joinConversation,
  listBots,
  listMine,
  listRooms,
} from "./api.js";
import { bdi, h, placeChildren } from "./dom.js";
import { formatDateTime, formatNumber, language, t, translate } from "./i18n.js";
import { icon } from "./icons.js";
import { languagePicker } from "./language-picker.js";
import { storage } from "./storage.js";
import { textLength } from "./text.js";

const ROOMS_EVERY_MS = 5000;

/**
 * The longest nickname and conversation name the server takes (domain/conversations.py
 * MAX_NAME), in characters as it counts them. Not the boxes' `maxlength`: that counts an
 * emoji as two, and cuts a longer paste without a word.
 */
const MAX_NAME = 50;

export class LobbyView {
  /**
   * @param {{onEnter: (conversation: object) => void, message?: string}} options `onEnter`
   *   gets the create or join response; `message`, an i18n key, is shown on top (why we
   *   are back here).
   */
  constructor({ onEnter, message }) {
    this.onEnter = onEnter;
    this.message = message ?? "";
    /** What the form's error line says, as a function: said again in a new language. */
    this.formErrorText = () => "";
    /** Its language when it is not the page's (the server's own words), else null. */
    this.formErrorLang = null;
    this.bots = null;
    this.rooms = undefined;
    /** Each room's row, by the room's id: {el, name, meta, button, room}. */
    this.roomRows = new Map();
    this.busy = false;
    this.#build();
  }

  #build() {
    this.nickname = h("input", {
      id: "nickname",
      name: "nickname",
      required: true,
      autocomplete: "nickname",
      value: storage.get("nickname") ?? "",
    });
    this.conversationName = h("input", {
      id: "conversation-name",
      name: "name",
      autocomplete: "off",
    });
    this.botList = h(
      "div",
      { class: "bot-list" },
      h("p", { class: "muted", "data-i18n": "lobby.loading" }, t("lobby.loading")),
    );
    // (it describes the field it is about: see #refuse)
    this.formError = h("p", { class: "form-error", id: "form-error", role: "alert" });
    this.startButton = h(
      "button",
      { type: "submit", class: "primary", "data-i18n": "lobby.start" },
      t("lobby.start"),
    );
    const form = h(
      "form",
      {
        class: "card new-conversation",
        "aria-labelledby": "new-title",
        novalidate: true,
        onsubmit: (e) => this.#create(e),
      },
      h("h2", { id: "new-title", "data-i18n": "lobby.new" }, t("lobby.new")),
      h(
        "div",
        { class: "field" },
        h("label", { for: "nickname", "data-i18n": "lobby.nickname" }, t("lobby.nickname")),
        this.nickname,
      ),
      h(
        "div",
        { class: "field" },
        h(
          "label",
          { for: "conversation-name" },
          h("span", { "data-i18n": "lobby.name" }, t("lobby.name")),
          " ",
          h("span", { class: "muted", "data-i18n": "lobby.optional" }, t("lobby.optional")),
        ),
        this.conversationName,
      ),
      h(
        "fieldset",
        { class: "field" },
        h("legend", { "data-i18n": "lobby.bots" }, t("lobby.bots")),
        this.botList,
      ),
      this.formError,
      this.startButton,
    );

    this.roomList = h("ul", { class: "room-list" });
    this.roomsCard = h(
      "section",
      { class: "card rooms", "aria-labelledby": "rooms-title", hidden: true },
      h(
        "div",
        { class: "card-head" },
        (this.roomsTitle = h(
          "h2",
          { id: "rooms-title", "data-i18n": "lobby.rooms" },
          t("lobby.rooms"),
        )),
        (this.refreshButton = h(
          "button",
          {
            type: "button",
            class: "icon-button",
            "data-i18n-aria-label": "lobby.refresh",
            "data-i18n-title": "lobby.refresh",
            "aria-label": t("lobby.refresh"),
            title: t("lobby.refresh"),
            onclick: () => this.#loadRooms(),
          },
          icon("retry"),
        )),
      ),
      this.roomList,
    );

    this.messageEl = h(
      "p",
      {
        class: "lobby-message",
        role: "alert",
        hidden: !this.message,
        "data-i18n": this.message || null,
      },
      this.message ? t(this.message) : "",
    );
    this.el = h(
      "div",
      { class: "lobby" },
      h(
        "header",
        { class: "topbar" },
        h(
          "h1",
          { class: "brand" },
          h("span", { class: "logo", "aria-hidden": "true" }, "T"),
          "Tertulia",
        ),
        languagePicker(),
      ),
      h(
        "main",
        { class: "lobby-main", id: "main" },
        h("p", { class: "tagline", "data-i18n": "lobby.tagline" }, t("lobby.tagline")),
        this.messageEl,
        h("div", { class: "lobby-grid" }, form, this.roomsCard),
      ),
    );
  }

  mounted() {
    document.title = "Tertulia";
    this.nickname.focus();
    this.botsLoaded = this.#loadBots();
    this.#loadRooms();
    this.timer = setInterval(() => {
      // Other people's rooms come and go; one's own conversations only change here.
      if (document.visibilityState === "visible" && !this.ownOnly) this.#loadRooms();
    }, ROOMS_EVERY_MS);
  }

  destroy() {
    clearInterval(this.timer);
  }

  relabel() {
    translate(this.el);
    this.#showFormError(this.formErrorText, this.formErrorLang);
    this.#renderBots();
    this.#renderRooms();
  }

  async #loadBots() {
    try {
      this.bots = await listBots();
    } catch {
      this.bots = [];
      this.#showFormError(() => t("lobby.unreachable"));
    }
    this.#renderBots();
  }

  #renderBots() {
    if (this.bots === null) return;
    const checked = new Set(this.#chosenBots());
    const first = !this.botList.querySelector("input");
    this.botList.replaceChildren(
      ...(this.bots.length
        ? this.bots.map((bot, index) =>
            h(
              "label",
              { class: "bot-chip" },
              h("input", {
                type: "checkbox",
                name: "bot",
                value: bot,
                // The first bot is ticked to start with: one click to a working chat.
                checked: first ? index === 0 : checked.has(bot),
              }),
              h("span", {}, icon("bot"), bdi(bot)),
            ),
          )
        : [h("p", { class: "muted" }, t("lobby.no_bots"))]),
    );
  }

  #chosenBots() {
    return [...this.botList.querySelectorAll("input[name=bot]:checked")].map(
      (input) => input.value,
    );
  }

  /** The nickname, or null (with the field marked) when it is empty or too long. */
  #validNickname() {
    const nickname = this.nickname.value.trim();
    const count = textLength(nickname);
    let problem = "";
    if (!nickname) problem = "lobby.nickname_missing";
    else if (count > MAX_NAME) problem = "lobby.nickname_too_long";
    if (!problem) {
      accept(this.nickname);
      storage.set("nickname", nickname);
      return nickname;
    }
    this.#refuse(this.nickname, problem, count);
    return null;
  }

  /**
   * The conversation's name (null for none), or undefined (with the field marked) when it
   * is too long.
   */
  #validName() {
    const name = this.conversationName.value.trim();
    const count = textLength(name);
    if (count <= MAX_NAME) {
      accept(this.conversationName);
      return name || null;
    }
    this.#refuse(this.conversationName, "lobby.name_too_long", count);
    return undefined;
  }

  /**
   * Mark `field`, say why (`key`, with the `count` of characters) under the form, which
   * describes it, and focus it.
   */
  #refuse(field, key, count) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", this.formError.id);
    this.#showFormError(() =>
      t(key, { count: formatNumber(count), max: formatNumber(MAX_NAME) }),
    );
    field.focus();
  }

  /**
   * Show `text()` under the form, and again after a change of language; `lang`, its
   * language when it is not the page's (the server's own words).
   */
  #showFormError(text, lang = null) {
    this.formErrorText = text;
    this.formErrorLang = lang;
    this.formError.textContent = text();
    if (lang) this.formError.lang = lang;
    else this.formError.removeAttribute("lang");
  }

  async #create(event) {
    event.preventDefault();
    if (this.busy) return;
    const nickname = this.#validNickname();
    if (!nickname) return;
    const name = this.#validName();
    if (name === undefined) return;
    this.busy = true;
    // A quick Enter must not start a conversation before the bot choices are on screen.
    await this.botsLoaded;
    await this.#enter(() =>
      createConversation({
        nickname,
        name,
        bots: this.#chosenBots(),
      }),
    );
  }

  async #join(room) {
    if (this.busy) return;
    // Re-entering keeps my participant and its name; a new member needs a nickname.
    const nickname = room.my_participant_id ? "" : this.#validNickname();
    if (nickname === null) return;
    this.busy = true;
    await this.#enter(() => joinConversation(room.id, nickname));
  }

  /** Run the create or join request (`busy` is already set) and enter, or show why not. */
  async #enter(request) {
    this.startButton.disabled = true;
    this.#showFormError(() => "");
    try {
      this.onEnter(await request());
    } catch (error) {
      // (the server's own words stay as they are, but for its storage out of reach, which
      // a person meets and is told in their language)
      const unavailable = error.status === 503 || error.body?.code === "unavailable";
      const detail = error.status === 0 || unavailable ? "" : detailText(error.body);
      const key = error.status === 0 ? "lobby.unreachable" : "lobby.failed";
      this.#showFormError(
        () => detail || t(unavailable ? "lobby.unavailable" : key),
        detail ? SERVER_LANGUAGE : null,
      );
      this.busy = false;
      this.startButton.disabled = false;
    }
  }

  async #loadRooms() {
    try {
      const rooms = await listRooms();
      // Rooms off: the list is the person's own conversations (an extension), to go back to.
      this.ownOnly = rooms === null;
      // (one's own newest first, as the server lists them; rooms by name, as people read)
      this.rooms = rooms ? byName(rooms) : await listMine();
    } catch {
      return; // Keep showing the last list; the next refresh tries again.
    }
    this.#renderRooms();
  }

  #renderRooms() {
    if (this.rooms === undefined) return;
    const title = this.ownOnly ? "lobby.yours" : "lobby.rooms";
    this.roomsTitle.dataset.i18n = title;
    this.roomsTitle.textContent = t(title);
    // No conversation of one's own yet: nothing to show.
    this.roomsCard.hidden = this.ownOnly && !this.rooms.length;
    if (this.roomsCard.hidden) return;
    // Re-render only when something changed.
    const signature = JSON.stringify([document.documentElement.lang, this.rooms]);
    if (signature === this.roomsSignature) return;
    this.roomsSignature = signature;
    // Rows are updated in place, by room, so that the keyboard's focus on one stays there
    // as people come and go (rebuilt, the list lost it to the page's body).
    const focusedRow = this.roomList.contains(document.activeElement)
      ? document.activeElement.closest("li[data-room]")
      : null;
    const focusedAt = focusedRow ? [...this.roomList.children].indexOf(focusedRow) : -1;
    let rows;
    if (this.rooms.length) {
      rows = this.rooms.map((room) => this.#roomRow(room));
    } else {
      this.emptyRow ??= h("li", { class: "muted empty" });
      this.emptyRow.textContent = t("lobby.no_rooms");
      rows = [this.emptyRow];
    }
    const kept = new Set(rows);
    for (const [id, row] of this.roomRows) if (!kept.has(row.el)) this.roomRows.delete(id);
    placeChildren(this.roomList, rows);
    // A row moved in the list loses the focus: it goes back to the same room's button, or
    // (the room gone) to the one now in its place, else to the list's refresh button.
    if (focusedRow && !this.roomList.contains(document.activeElement)) {
      const buttons = this.roomList.querySelectorAll("button");
      const next =
        this.roomRows.get(focusedRow.dataset.room)?.button ??
        buttons[Math.min(focusedAt, buttons.length - 1)] ??
        this.refreshButton;
      next.focus();
    }
  }

  /** The row of `room`: its row, brought up to date, or a new one. */
  #roomRow(room) {
    let row = this.roomRows.get(room.id);
    if (!row) {
      const name = h("span", { class: "room-name" });
      const meta = h("span", { class: "room-meta" });
      const button = h("button", { type: "button", onclick: () => this.#join(row.room) });
      const el = h(
        "li",
        { class: "room", dataset: { room: room.id } },
        h("div", { class: "room-text" }, name, meta),
        button,
      );
      row = { el, name, meta, button };
      this.roomRows.set(room.id, row);
    }
    row.room = room;
    const name = room.name || t("conversation.untitled");
    const created = room.created_at ? new Date(room.created_at) : null;
    const mine = Boolean(room.my_participant_id);
    // (whole in its tooltip, where the card cuts it short; isolated: "نادي!")
    if (row.name.title !== name) {
      row.name.replaceChildren(bdi(name));
      row.name.title = name;
    }
    setText(
      row.meta,
      t("lobby.room_people", { count: room.participant_count ?? 0 }) +
        (created ? ` · ${formatDateTime(created, "medium")}` : ""),
    );
    row.button.className = mine ? "secondary" : "primary";
    const label = t(mine ? "lobby.rejoin_named" : "lobby.join_named", { name });
    if (row.button.getAttribute("aria-label") !== label) {
      row.button.setAttribute("aria-label", label);
    }
    setText(row.button, t(mine ? "lobby.rejoin" : "lobby.join"));
    return row.el;
  }
}

/** Set an element's text, only if it changes (a screen reader in it is not disturbed). */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** A field found valid: no longer marked, nor described by the form's error. */
function accept(field) {
  field.removeAttribute("aria-invalid");
  field.removeAttribute("aria-describedby");
}

/**
 * Rooms by name as a dictionary of the page's language orders names (case and accents
 * aside, "Room 2" before "Room 10"), unnamed ones last; the server lists them by code
 * point, every capital before any small letter and "ábaco" after "zebra".
 */
function byName(rooms) {
  const collator = new Intl.Collator(language(), { sensitivity: "base", numeric: true });
  return [...rooms].sort(
    (a, b) => Number(!a.name) - Number(!b.name) || collator.compare(a.name ?? "", b.name ?? ""),
  );
}
