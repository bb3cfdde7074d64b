/**
 * The message box: text (Enter sends, Shift+Enter starts a new line), the message being
 * replied to, files picked, dropped or pasted (checked against the limits before any
 * upload), and voice notes.
 */

import { canAttach, acceptFor, checkFile, limitOf } from "./attachments.js";
import { bdi, h } from "./dom.js";
import {
  formatDuration,
  formatNumber,
  formatSize,
  formatSizes,
  partsText,
  t,
  tParts,
} from "./i18n.js";
import { icon } from "./icons.js";
import { nameOf } from "./message-view.js";
import { VoiceRecorder } from "./recorder.js";
import { showsNothing, snippet, textLength } from "./text.js";

/**
 * The longest text the server takes (domain/inputs.py MAX_TEXT), in characters (code
 * points, as Python counts them), once trimmed. Not the box's `maxlength`: that would cut
 * a longer paste without a word, and it counts an emoji as two.
 */
export const MAX_TEXT = 4000;

/** How long an alert under the box keeps its text (it is read when it comes). */
const ALERT_FOR_MS = 10_000;

const KIND_NAMES = {
  i: "kind.image",
  v: "kind.video",
  a: "kind.audio",
  V: "kind.voice",
  A: "kind.attachment",
};

/** Why a file cannot be sent, in words (as tParts: its name isolated, in a <bdi>). */
export function fileProblem(file, check) {
  const name = bdi(file.name || t(KIND_NAMES[check.kind]));
  if (check.reason === "empty") return tParts("file.empty", { name });
  if (check.reason === "too_large") {
    const [size, max] = formatSizes(file.size, check.limit);
    return tParts("file.too_large", { name, size, max });
  }
  return tParts("file.not_accepted", { name, kind: t(KIND_NAMES[check.kind]).toLowerCase() });
}

export class Composer {
  /** @param {import("./session.js").ChatSession} session */
  constructor(session) {
    this.session = session;
    this.reply = null;
    /**
     * What the error line says, as a function (of a text, or of parts as tParts gives
     * them): said again in a new language.
     */
    this.error = () => "";
    /** Whether the error line says the text is too long (cleared once it is not). */
    this.lengthError = false;
    /** Files waiting for Send: {file, kind, thumb}. */
    this.staged = [];
    this.recorder = null;
    /**
     * The id of the message a restored draft replies to, until the store has it (the
     * history loads after the box is built): shown then.
     */
    this.replyToRestore = null;
    this.#build();
    this.applyLimits(session.limits);
    this.#restoreDraft();
  }

  /**
   * Nothing written is lost: the text typed and the message replied to come back after a
   * reload (even a text too long to send, which the box keeps and says so).
   */
  #restoreDraft() {
    const draft = this.session.draft;
    if (!draft) return;
    this.input.value = draft.text;
    this.#checkLength();
    // (its height once it is in the page: see mounted)
    if (!draft.replyTo) return;
    this.replyToRestore = draft.replyTo;
    this.onStoreChange = () => this.#restoreReply();
    this.session.store.addEventListener("change", this.onStoreChange);
    this.#restoreReply();
  }

  #restoreReply() {
    const message = this.replyToRestore && this.session.store.get(this.replyToRestore);
    if (!this.replyToRestore || message) {
      this.session.store.removeEventListener("change", this.onStoreChange);
    }
    if (!message) return;
    this.replyToRestore = null;
    this.reply = message;
    this.#renderReply();
  }

  #saveDraft() {
    this.session.saveDraft(this.input.value, this.reply?.id ?? this.replyToRestore ?? null);
  }

  /** Called once the box is in the page (a restored draft's height is measured then). */
  mounted() {
    if (this.input.value) this.#grow();
  }

  #build() {
    this.input = h("textarea", {
      id: "composer-input",
      class: "composer-input",
      dir: "auto",
      rows: "1",
      autocomplete: "off",
      // (the error line too: read with the box, kept up to date without being read out)
      "aria-describedby": "composer-hint composer-error",
      "data-i18n-placeholder": "composer.placeholder",
      "data-i18n-aria-label": "composer.label",
      placeholder: t("composer.placeholder"),
      "aria-label": t("composer.label"),
      oninput: () => {
        this.#grow();
        this.#checkLength();
        this.#saveDraft();
      },
      onkeydown: (event) => this.#onKey(event),
      onpaste: (event) => {
        const files = [...(event.clipboardData?.files ?? [])];
        if (files.length) {
          event.preventDefault();
          this.stageFiles(files);
        }
      },
    });
    this.fileInput = h("input", {
      type: "file",
      class: "file-input",
      multiple: true,
      hidden: true,
      tabindex: "-1",
      onchange: () => {
        this.stageFiles([...this.fileInput.files]);
        this.fileInput.value = "";
      },
    });
    this.replyBox = h("div", { class: "reply-preview", hidden: true });
    this.stagedBox = h("ul", {
      class: "staged",
      hidden: true,
      "aria-label": t("composer.staged"),
      "data-i18n-aria-label": "composer.staged",
    });
    // The error line is not a live region: it follows each keystroke while the text is
    // too long. What is to be said at once goes to the alert beside it (#alert).
    this.errorBox = h("p", { class: "composer-error", id: "composer-error" });
    this.alertBox = h("p", { class: "sr-only", role: "alert" });
    this.attachButton = h(
      "button",
      {
        type: "button",
        class: "icon-button attach",
        "data-i18n-aria-label": "action.attach",
        "data-i18n-title": "action.attach",
        "aria-label": t("action.attach"),
        title: t("action.attach"),
        onclick: () => this.fileInput.click(),
      },
      icon("attach"),
    );
    this.micButton = h(
      "button",
      {
        type: "button",
        class: "icon-button mic",
        hidden: true,
        "data-i18n-aria-label": "action.record",
        "data-i18n-title": "action.record",
        "aria-label": t("action.record"),
        title: t("action.record"),
        onclick: () => this.startRecording(),
      },
      icon("mic"),
    );
    this.sendButton = h(
      "button",
      {
        type: "submit",
        class: "icon-button send",
        "data-i18n-aria-label": "action.send",
        "data-i18n-title": "action.send",
        "aria-label": t("action.send"),
        title: t("action.send"),
      },
      icon("send"),
    );
    this.writeRow = h(
      "div",
      { class: "composer-row" },
      this.attachButton,
      this.input,
      this.micButton,
      this.sendButton,
    );

    this.recordClock = h("span", { class: "record-clock" }, "0:00");
    this.recordRow = h(
      "div",
      { class: "composer-row recording", hidden: true },
      h(
        "button",
        {
          type: "button",
          class: "icon-button",
          "data-i18n-aria-label": "action.cancel_recording",
          "aria-label": t("action.cancel_recording"),
          onclick: () => this.finishRecording(false),
        },
        icon("trash"),
      ),
      h("span", { class: "record-dot", "aria-hidden": "true" }),
      h("span", { class: "record-label", "data-i18n": "voice.recording" }, t("voice.recording")),
      this.recordClock,
      h(
        "button",
        {
          type: "button",
          class: "icon-button send",
          "data-i18n-aria-label": "action.send_recording",
          "aria-label": t("action.send_recording"),
          onclick: () => this.finishRecording(true),
        },
        icon("send"),
      ),
    );

    this.el = h(
      "form",
      {
        class: "composer",
        "aria-label": t("composer.form"),
        "data-i18n-aria-label": "composer.form",
        onsubmit: (event) => {
          event.preventDefault();
          this.submit();
        },
      },
      this.replyBox,
      this.stagedBox,
      this.errorBox,
      this.alertBox,
      this.writeRow,
      this.recordRow,
      this.fileInput,
      h(
        "p",
        { id: "composer-hint", class: "sr-only", "data-i18n": "composer.hint" },
        t("composer.hint"),
      ),
    );
  }

  /** Show or hide the file and voice buttons for the server's limits. */
  applyLimits(limits) {
    this.attachButton.hidden = Boolean(limits) && !canAttach(limits);
    this.fileInput.accept = acceptFor(limits);
    this.micButton.hidden = !(limits && limitOf(limits, "V") && VoiceRecorder.supported());
  }

  focus() {
    this.input.focus();
  }

  #grow() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  #onKey(event) {
    // isComposing: Enter also confirms an IME composition; that must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape" && this.reply) {
      event.preventDefault();
      this.setReply(null);
    }
  }

  /**
   * Say, while it lasts, that the text is over the limit (the person shortens it or splits
   * it; nothing is cut). Returns whether it is. A screen reader is told when it goes over
   * (or with `alert`), not at each keystroke: the line under the box, which describes it,
   * follows the count silently.
   */
  #checkLength({ alert = false } = {}) {
    const length = textLength(this.input.value);
    const over = length > MAX_TEXT;
    if (over) {
      this.input.setAttribute("aria-invalid", "true");
      const crossing = !this.lengthError;
      this.showError(
        () => t("composer.too_long", { count: formatNumber(length), max: formatNumber(MAX_TEXT) }),
        { alert: crossing || alert },
      );
      this.lengthError = true;
    } else {
      this.input.removeAttribute("aria-invalid");
      if (this.lengthError) this.showError("");
    }
    return over;
  }

  submit() {
    // (the caption of a file goes as its text, with the same limit; said again: nothing
    // happens otherwise)
    if (this.#checkLength({ alert: true })) {
      this.input.focus();
      return;
    }
    // (a text of only invisible characters is no text: it would be an empty bubble)
    const written = this.input.value.trim();
    const text = showsNothing(written) ? "" : written;
    const quotedId = this.reply?.id ?? null;
    if (this.staged.length) {
      const staged = this.staged;
      this.staged = [];
      staged.forEach((item, index) => {
        if (item.thumb) URL.revokeObjectURL(item.thumb);
        // The caption and the quote go with the first file.
        this.session.sendFile(item.file, {
          kind: item.kind,
          text: index === 0 ? text : "",
          quotedId: index === 0 ? quotedId : null,
        });
      });
      this.#renderStaged();
    } else if (text) {
      this.session.sendText(text, quotedId);
    } else {
      return;
    }
    this.input.value = "";
    this.#grow();
    this.setReply(null); // (forgets the draft: the text is empty now)
    this.showError("");
    this.input.focus();
  }

  /** Reply to `message` (null: stop replying). */
  setReply(message) {
    this.reply = message;
    this.replyToRestore = null; // (chosen again: the restored one no longer matters)
    this.#renderReply();
    this.#saveDraft();
    if (message) this.input.focus();
  }

  /** Say again whom the reply is to (they may have been renamed meanwhile). */
  refreshReply() {
    const label = this.replyBox.querySelector(".reply-name");
    if (!this.reply || !label) return;
    // Only the name: rebuilding the box would take the focus off its button.
    const name = bdi(nameOf(this.session.store, this.reply.sender_id));
    label.replaceChildren(...tParts("composer.replying_to", { name }));
  }

  /** Everything built here with words, in the language just chosen. */
  relabel() {
    this.#renderReply();
    this.#renderStaged();
    this.showError(this.error, { alert: false });
  }

  #renderReply() {
    const message = this.reply;
    this.replyBox.hidden = !message;
    if (!message) {
      this.replyBox.replaceChildren();
      return;
    }
    const name = bdi(nameOf(this.session.store, message.sender_id));
    this.replyBox.replaceChildren(
      icon("reply"),
      h(
        "div",
        { class: "reply-text" },
        h("span", { class: "reply-name" }, tParts("composer.replying_to", { name })),
        // (laid out in its own direction, as the quote it becomes)
        h("span", { class: "reply-snippet", dir: "auto" }, snippet(message)),
      ),
      h(
        "button",
        {
          type: "button",
          class: "icon-button",
          "aria-label": t("action.cancel_reply"),
          title: t("action.cancel_reply"),
          onclick: () => {
            this.setReply(null);
            this.input.focus();
          },
        },
        icon("close"),
      ),
    );
  }

  /**
   * Show an error under the box: a function giving its text or its parts (kept, so that a
   * change of language says it again), or a text. With `alert`, a screen reader is told at
   * once (an error just met; not the same one said again in another language).
   */
  showError(error, { alert = true } = {}) {
    if (error !== this.error) this.lengthError = false;
    this.error = typeof error === "function" ? error : () => error;
    const said = [this.error()].flat().filter((part) => part !== "");
    this.errorBox.replaceChildren(...said);
    const text = partsText(said);
    if (alert || !text) this.#alert(text);
  }

  /**
   * Tell a screen reader `text` at once. The alert is emptied a little later: the line
   * under the box (which describes it) stays, up to date; the alert's copy would not.
   */
  #alert(text) {
    clearTimeout(this.alertTimer);
    this.alertBox.textContent = text;
    if (text) this.alertTimer = setTimeout(() => this.alertBox.replaceChildren(), ALERT_FOR_MS);
  }

  /** Check files against the limits and keep those that pass until Send. */
  async stageFiles(files) {
    if (!files.length) return;
    const limits = this.session.limits ?? (await this.session.loadLimits());
    if (!limits) {
      this.showError(() => t("file.limits_unknown"));
      return;
    }
    const problems = [];
    for (const file of files) {
      const check = checkFile(file, limits);
      if (!check.ok) {
        problems.push([file, check]);
        continue;
      }
      this.staged.push({
        file,
        kind: check.kind,
        thumb: check.kind === "i" ? URL.createObjectURL(file) : null,
      });
    }
    this.#renderStaged();
    this.showError(() =>
      problems.flatMap(([file, check], index) => [index ? " " : "", ...fileProblem(file, check)]),
    );
    this.input.focus();
  }

  #renderStaged() {
    this.stagedBox.hidden = !this.staged.length;
    this.stagedBox.replaceChildren(
      ...this.staged.map((item) =>
        h(
          "li",
          { class: "staged-file" },
          item.thumb && !item.broken
            ? h("img", {
                src: item.thumb,
                alt: "",
                class: "staged-thumb",
                // Its content is not the image its type says (the server will take it as a
                // file): the file's icon, not a broken image.
                onerror: (event) => {
                  item.broken = true;
                  event.target.replaceWith(icon("file", "icon staged-icon"));
                },
              })
            : icon("file", "icon staged-icon"),
          // (whole in its tooltip, where the row cuts it short)
          h("span", { class: "staged-name", title: item.file.name }, bdi(item.file.name)),
          h("span", { class: "staged-size" }, formatSize(item.file.size)),
          h(
            "button",
            {
              type: "button",
              class: "icon-button",
              "aria-label": t("action.remove_file", { name: item.file.name }),
              onclick: () => {
                if (item.thumb) URL.revokeObjectURL(item.thumb);
                this.staged = this.staged.filter((other) => other !== item);
                this.#renderStaged();
                this.input.focus();
              },
            },
            icon("close"),
          ),
        ),
      ),
    );
  }

  async startRecording() {
    if (this.recorder) return;
    const recorder = new VoiceRecorder();
    try {
      await recorder.start();
    } catch {
      this.showError(() => t("voice.denied"));
      return;
    }
    this.recorder = recorder;
    this.writeRow.hidden = true;
    this.recordRow.hidden = false;
    this.recordClock.textContent = formatDuration(0);
    this.clock = setInterval(() => {
      this.recordClock.textContent = formatDuration(recorder.elapsed);
    }, 500);
    this.recordRow.querySelector(".send").focus();
  }

  /** Stop recording; send the note when `send`, else throw it away. */
  async finishRecording(send) {
    const recorder = this.recorder;
    if (!recorder) return;
    this.recorder = null;
    clearInterval(this.clock);
    this.recordRow.hidden = true;
    this.writeRow.hidden = false;
    this.input.focus();
    if (!send) {
      recorder.cancel();
      return;
    }
    const blob = await recorder.stop();
    const check = checkFile(blob, this.session.limits, "V");
    if (!check.ok) {
      this.showError(() => fileProblem(blob, check));
      return;
    }
    // BLAB's web client sends a recording as a file part named "blob".
    this.session.sendFile(blob, {
      kind: "V",
      text: "",
      fileName: "blob",
      quotedId: this.reply?.id ?? null,
    });
    this.setReply(null);
  }

  destroy() {
    if (this.onStoreChange) this.session.store.removeEventListener("change", this.onStoreChange);
    clearInterval(this.clock);
    clearTimeout(this.alertTimer);
    this.recorder?.cancel();
    for (const item of this.staged) if (item.thumb) URL.revokeObjectURL(item.thumb);
  }
}
