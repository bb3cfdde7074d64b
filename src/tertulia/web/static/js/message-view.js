/**
 * One row of the conversation: a message bubble, a line for a system event, a message of
 * mine still on its way, or a day separator. Rows are built from data only; the list
 * (message-list.js) decides when a row must be rebuilt.
 */

import { SERVER_LANGUAGE } from "./api.js";
import { bdi, h, srOnly } from "./dom.js";
import { formatDateTime, formatDay, formatSize, formatTime, t, tParts } from "./i18n.js";
import { icon } from "./icons.js";
import { richText, safeUrl, snippet } from "./text.js";

/** The display name of a participant id ("You" for me, unless `you` is false). */
export function nameOf(store, id, { you = true } = {}) {
  if (you && id && id === store.me) return t("you");
  return store.participant(id)?.name || t("someone");
}

/** The readable line for a system message (PROTOCOL 5.4); "You joined" unless `you` is false. */
export function systemText(message, store, { you = true } = {}) {
  return systemSentence(message, store, you, t);
}

/** The line for a system message as parts to show: the name in it isolated (a <bdi>). */
function systemParts(message, store) {
  return systemSentence(message, store, true, (key, params = {}) =>
    tParts(key, "name" in params ? { ...params, name: bdi(params.name) } : params),
  );
}

/** A system message's sentence, said by `say(key, params)` (t or tParts). */
function systemSentence(message, store, you, say) {
  const id = message.additional_metadata?.participant_id;
  const mine = you && id && id === store.me;
  const name = nameOf(store, id, { you });
  switch (message.event) {
    case "conversation-created":
      return say("system.created");
    case "participant-joined":
      return mine ? say("system.you_joined") : say("system.joined", { name });
    case "participant-left":
      return mine ? say("system.you_left") : say("system.left", { name });
    case "conversation-ended":
      return id ? say("system.ended_by", { name }) : say("system.ended");
    default:
      return say("system.other", { event: String(message.event ?? "") });
  }
}

/** A participant's colour (a hue picked from the id), for the avatar and the name. */
export function hueStyle(participant) {
  let hash = 0;
  for (const char of participant?.id ?? participant?.name ?? "") {
    hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  }
  return `--avatar-hue: ${hash % 360}`;
}

/** Initials on the participant's colour, or a bot icon. */
export function avatar(participant) {
  const name = participant?.name || "?";
  const style = hueStyle(participant);
  if (participant?.type === "B") {
    return h("span", { class: "avatar avatar-bot", style, "aria-hidden": "true" }, icon("bot"));
  }
  // The first letter or digit of the first two words that have one ("Carol <b>X</b>":
  // "CB", not "C<"); a name with none (emoji alone) shows its first character.
  const initials = name
    .split(/\s+/)
    .map((word) => /[\p{L}\p{N}]/u.exec(word)?.[0])
    .filter(Boolean)
    .slice(0, 2)
    .map((letter) => letter.toUpperCase())
    .join("");
  const shown = initials || [...name.trim()][0] || "?";
  return h("span", { class: "avatar", style, "aria-hidden": "true" }, shown);
}

/** What a quote shows: who and what (also part of the row's signature). */
export function quoteInfo(store, quotedId) {
  if (!quotedId) return null;
  const quoted = store.get(quotedId);
  if (!quoted) return { id: quotedId, missing: true };
  if (quoted.type === "S")
    return { id: quotedId, name: t("system.name"), text: systemText(quoted, store) };
  return { id: quotedId, name: nameOf(store, quoted.sender_id), text: snippet(quoted) };
}

function quoteBlock(info, actions) {
  if (!info) return null;
  if (info.missing) {
    // Earlier than the loaded history: the button loads pages until it is there.
    return h(
      "button",
      {
        type: "button",
        class: "quote quote-missing",
        onclick: (event) => {
          event.stopPropagation();
          actions.jump(info.id);
        },
      },
      t("quote.missing"),
    );
  }
  return h(
    "button",
    {
      type: "button",
      class: "quote",
      title: t("quote.go"),
      onclick: (event) => {
        event.stopPropagation();
        actions.jump(info.id);
      },
    },
    srOnly(`${t("quote.label")} `),
    h("span", { class: "quote-name" }, bdi(info.name)),
    h("span", { class: "quote-text", dir: "auto" }, info.text),
  );
}

function fileCard(url, name, size) {
  const body = [
    icon("file", "icon file-icon"),
    h(
      "span",
      { class: "file-meta" },
      // (whole in its tooltip, where the card cuts it short)
      h("span", { class: "file-name", title: name || null }, bdi(name || t("kind.attachment"))),
      Number.isFinite(size) ? h("span", { class: "file-size" }, formatSize(size)) : null,
    ),
  ];
  if (!url) return h("span", { class: "file-card" }, body);
  return h(
    "a",
    { class: "file-card", href: url, download: name || true, target: "_blank", rel: "noopener" },
    body,
  );
}

/** The body of a message or of a pending one (`url` is the file or its local preview). */
function content(type, { url, text, fileName, fileSize }) {
  const parts = [];
  if (type !== "T" && !url && type !== "A") {
    parts.push(h("p", { class: "unavailable" }, t("file.unavailable")));
  } else if (type === "i") {
    const alt = text || fileName || t("kind.image");
    parts.push(
      h(
        "a",
        { class: "media-link", href: url, target: "_blank", rel: "noopener" },
        h("img", { class: "media-image", src: url, alt, loading: "lazy", decoding: "async" }),
      ),
    );
  } else if (type === "v") {
    parts.push(
      h("video", {
        class: "media-video",
        src: url,
        controls: true,
        preload: "metadata",
        playsinline: true,
      }),
    );
  } else if (type === "a" || type === "V") {
    if (type === "V") parts.push(h("span", { class: "voice-label" }, icon("mic"), t("kind.voice")));
    parts.push(h("audio", { class: "media-audio", src: url, controls: true, preload: "metadata" }));
  } else if (type === "A") {
    parts.push(fileCard(url, fileName, fileSize));
  }
  if (text) {
    // (dir auto: a right-to-left text is laid out so, its punctuation at its own end)
    const attributes = { class: type === "T" ? "text" : "text caption", dir: "auto" };
    parts.push(h("p", attributes, richText(text)));
  }
  return parts;
}

function rowClasses(base, { mine, groupStart, groupEnd }) {
  return [base, mine ? "mine" : "theirs", groupStart && "group-start", groupEnd && "group-end"]
    .filter(Boolean)
    .join(" ");
}

/**
 * A confirmed message.
 *
 * @param {object} message the wire message
 * @param {object} ctx {store, groupStart, groupEnd, quote (quoteInfo), optionsLive
 *   (whether its options may be chosen: only the newest message offering some),
 *   actions: {reply(message), option(message, text), jump(id)}}
 */
export function messageRow(message, ctx) {
  const { store, actions } = ctx;
  const mine = message.sender_id === store.me;
  const sender = store.participant(message.sender_id);
  const name = nameOf(store, message.sender_id);
  const time = new Date(message.time);
  const options = Array.isArray(message.options)
    ? message.options.filter((o) => typeof o === "string")
    : [];

  const bot = sender?.type === "B";
  const bubble = h(
    "div",
    { class: "bubble" },
    // Who, and whether a bot, read before the text (the label and its badge are not read);
    // the time, once, after it (the visible <time>).
    srOnly(bot ? `${name}, ${t("participants.is_bot")}: ` : `${name}: `),
    !mine && ctx.groupStart
      ? h(
          "div",
          { class: "sender", style: hueStyle(sender), "aria-hidden": "true" },
          bdi(name),
          bot ? h("span", { class: "badge-bot" }, t("bot.badge")) : null,
        )
      : null,
    quoteBlock(ctx.quote, actions),
    content(message.type, {
      url: safeUrl(message.file_url),
      text: message.text,
      fileName: message.file_name,
      fileSize: message.file_size,
    }),
    h(
      "span",
      { class: "meta" },
      h("time", { datetime: message.time, title: formatDateTime(time) }, formatTime(time)),
      mine
        ? h(
            "span",
            { class: "status", title: t("status.sent") },
            icon("check", "icon tick"),
            srOnly(t("status.sent")),
          )
        : null,
    ),
  );

  // An earlier prompt's options stay readable (what was offered) but cannot be chosen:
  // the answer would quote a question that a newer one replaced.
  const live = ctx.optionsLive !== false;
  const optionRow = options.length
    ? h(
        "div",
        {
          class: live ? "options" : "options is-stale",
          role: "group",
          "aria-label": t("options.label"),
          title: live ? null : t("options.stale"),
        },
        options.map((option) =>
          h(
            "button",
            {
              type: "button",
              class: "option",
              disabled: !live,
              "aria-disabled": live ? null : "true",
              onclick: live ? () => actions.option(message, option) : null,
            },
            bdi(option),
          ),
        ),
      )
    : null;

  return h(
    "li",
    {
      class: rowClasses(`row msg type-${message.type}`, { mine, ...ctx }),
      dataset: { key: `m:${message.id}`, id: message.id },
      tabindex: "-1",
    },
    mine ? null : ctx.groupStart ? avatar(sender) : h("span", { class: "avatar-space" }),
    h("div", { class: "stack" }, bubble, optionRow),
    h(
      "div",
      { class: "row-actions" },
      h(
        "button",
        {
          type: "button",
          class: "icon-button reply",
          "aria-label": t("action.reply_to", { name }),
          title: t("action.reply"),
          onclick: () => actions.reply(message),
        },
        icon("reply"),
      ),
    ),
  );
}

/** A system event as a centred line. */
export function systemRow(message, ctx) {
  const time = new Date(message.time);
  const ended = message.event === "conversation-ended";
  return h(
    "li",
    {
      class: `row system${ended ? " system-ended" : ""}`,
      dataset: { key: `m:${message.id}`, id: message.id },
      tabindex: "-1",
    },
    h(
      "p",
      { class: "system-line" },
      h("span", {}, systemParts(message, ctx.store)),
      h("time", { datetime: message.time, title: formatDateTime(time) }, formatTime(time)),
    ),
  );
}

/** Status words of a pending message. */
function pendingStatus(entry, connected) {
  switch (entry.status) {
    case "uploading":
      return t("status.uploading", { percent: Math.round((entry.progress ?? 0) * 100) });
    case "failed":
      return t("status.failed");
    case "waiting":
      // (the socket is up but uploads fail: a proxy, a server restarting behind it)
      return connected ? t("status.retrying") : t("status.waiting");
    case "next":
      return t("status.next_upload");
    default:
      if (!connected) return t("status.waiting");
      // (refused as unavailable: sent again after the server's wait, as long as it takes)
      return entry.held === "server" ? t("status.server_waiting") : t("status.sending");
  }
}

/** Text of a failure: a plain string, `{text}` or `{key, params}` (see session.js). */
export function errorText(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  if (error.text) return error.text;
  const params = { ...(error.params ?? {}) };
  if (Number.isFinite(params.max)) params.max = formatSize(params.max);
  return t(error.key, params);
}

/** The language of a failure's text: the server's for its own words (`{text}`), else null. */
export function errorLanguage(error) {
  return error && typeof error === "object" && error.text ? SERVER_LANGUAGE : null;
}

/** A message of mine waiting for the server's echo (or failed). */
export function pendingRow(entry, ctx) {
  const { actions } = ctx;
  const failed = entry.status === "failed";
  const status = pendingStatus(entry, ctx.connected);
  const bubble = h(
    "div",
    { class: "bubble" },
    srOnly(`${t("you")}: `),
    quoteBlock(ctx.quote, actions),
    content(entry.type, {
      url: entry.previewUrl,
      text: entry.text,
      fileName: entry.fileName,
      fileSize: entry.size,
    }),
    entry.status === "uploading"
      ? h("progress", {
          class: "upload-progress",
          max: "100",
          value: String(Math.round((entry.progress ?? 0) * 100)),
          "aria-label": t("status.upload_progress"),
        })
      : null,
    h(
      "span",
      { class: "meta" },
      h("span", { class: "status-text" }, status),
      h("span", { class: "status" }, icon(failed ? "alert" : "clock", "icon tick")),
    ),
  );
  const failure = failed
    ? h(
        "div",
        // A refused text comes with a notice (an alert, one for a burst of them): an alert
        // here too would read the refusal again for each text. A failed upload has none.
        { class: "failure", role: entry.type === "T" ? null : "alert" },
        h(
          "span",
          { lang: errorLanguage(entry.error) },
          errorText(entry.error) || t("status.failed"),
        ),
        // (no Retry where the same message would only be refused again)
        entry.error?.final
          ? null
          : h(
              "button",
              { type: "button", class: "link-button", onclick: () => actions.retry(entry.localId) },
              icon("retry"),
              t("action.retry"),
            ),
        entry.error?.unquote
          ? h(
              "button",
              {
                type: "button",
                class: "link-button",
                onclick: () => actions.retry(entry.localId, { withoutQuote: true }),
              },
              icon("retry"),
              t("action.send_unquoted"),
            )
          : null,
        h(
          "button",
          { type: "button", class: "link-button", onclick: () => actions.discard(entry.localId) },
          icon("trash"),
          t("action.discard"),
        ),
      )
    : null;
  return h(
    "li",
    {
      class: rowClasses(`row msg pending status-${entry.status} type-${entry.type}`, {
        mine: true,
        ...ctx,
      }),
      dataset: { key: `p:${entry.localId}`, localId: entry.localId },
      tabindex: "-1",
      "aria-busy": failed ? null : "true",
    },
    h("div", { class: "stack" }, bubble, failure),
    ["uploading", "next", "waiting"].includes(entry.status) && entry.type !== "T"
      ? h(
          "div",
          { class: "row-actions" },
          h(
            "button",
            {
              type: "button",
              class: "icon-button",
              "aria-label": t("action.cancel_upload"),
              title: t("action.cancel_upload"),
              onclick: () => actions.discard(entry.localId),
            },
            icon("close"),
          ),
        )
      : null,
  );
}

/** "Today", "Yesterday" or a date, between days. */
export function dayRow(date, key) {
  return h("li", { class: "day", dataset: { key } }, h("span", {}, formatDay(date)));
}
