/**
 * The page's side of one conversation: loads the history, keeps the socket, sends text
 * over the socket and files over REST, and makes sure every message of mine is delivered
 * exactly once however the connection behaves.
 *
 * Delivery: a message of mine stays pending until the server echoes it (a `message` frame
 * with my sender_id and its local_id — there is no other acknowledgement). After a
 * reconnect, pending texts are sent again with the same local_id; the server stores a
 * local_id once and only re-echoes a repeat, and the store drops anything seen twice by id.
 *
 * Resume: the history is loaded first, then the socket connects with `?after=<highest
 * seq>` (a Tertulia extension): the server replays every visible message with a higher
 * seq, then continues live, so nothing falls between history and socket or between two
 * sockets. A socket that died silently (connection.js) is replaced the same way: a text
 * whose echo does not come is what gives it away.
 */

import { detailText, getConversation, getLimits, getMessages, uploadMessage } from "./api.js";
import { checkFile } from "./attachments.js";
import { backoffDelay, Connection } from "./connection.js";
import { storage, newLocalId } from "./storage.js";
import { ConversationStore } from "./store.js";

/** How much history a page loads at first (as BLAB's front end). */
export const HISTORY_LIMIT = 200;
const PAGE_SIZE = 100;
/** Upload failures that may pass by themselves: retried when the socket is back. */
const TRANSIENT = new Set([0, 502, 503, 504]);
/** Milliseconds before an upload the server did not take (it is away) is tried again. */
const UPLOAD_RETRY_MS = 3000;
/** Transient failures in a row, while the socket is up, before an upload counts as failed. */
const MAX_UPLOAD_ATTEMPTS = 5;
/**
 * A text refused as too fast waits and goes again by itself when the server says it may
 * within this many seconds (a burst: pending texts sent after an outage), up to
 * MAX_THROTTLED times in a row; past that it fails, with the reason and a Retry. Texts go
 * one at a time (#pumpTexts), so a text is refused again only when something else (another
 * tab of the person) took the server's slot: it never pays for its own queue.
 */
const THROTTLED_WAIT_MAX = 10;
const MAX_THROTTLED = 5;
/**
 * A text refused as `unavailable` (the server's database or broker out of reach) waits the
 * server's retry_after (this when it names none, and at most UNAVAILABLE_WAIT_MAX) and goes
 * again, for as long as the outage lasts: a person's text is never dropped for it.
 */
const UNAVAILABLE_WAIT = 5;
const UNAVAILABLE_WAIT_MAX = 30;
/** Error frames' codes a person may meet, and what to tell them (i18n keys). */
const REFUSALS = {
  throttled: "refused.throttled",
  not_participant: "refused.not_participant",
  unavailable: "refused.unavailable",
};

/**
 * Error codes of refusals that the same message, sent again, would meet again: no Retry
 * is offered for them (only Delete, or for a quote gone, sending it without the quote).
 */
const FINAL = new Set(["invalid", "bad_command", "not_found", "not_participant"]);

/** The close code of a conversation deleted while open (as a refused handshake). */
const CLOSE_GONE = 4404;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Forget what this browser keeps for a conversation the server says is gone (its pending
 * texts, its draft): nothing could ever send them, and nothing else would remove them.
 */
export function forgetConversation(id) {
  storage.remove(`pending.${id}`);
  storage.remove(`draft.${id}`);
}

export class ChatSession extends EventTarget {
  /** @param {object} conversation the create or join response (PROTOCOL 3.6) */
  constructor(conversation) {
    super();
    this.id = conversation.id;
    this.store = new ConversationStore({
      me: conversation.my_participant_id,
      participants: conversation.participants,
      name: conversation.name,
    });
    this.limits = null;
    this.stopped = false;
    /** The server said the conversation no longer exists: nothing is kept for it. */
    this.gone = false;
    this.failedAttempts = 0;
    /** Aborts for uploads in flight, by local_id (one at a time: see #pumpUploads). */
    this.uploads = new Map();
    /** local_ids of the files to upload, in the order they were sent; the first uploads. */
    this.uploadQueue = [];
    /** When the first file, waiting for the server, may be tried again (Date.now()). */
    this.uploadRetryAt = 0;
    this.uploadTimer = null;
    this.connection = new Connection(() => this.#socketUrl(), {
      onOpen: () => this.#onOpen(),
      onFrame: (frame) => this.#onFrame(frame),
      onClose: (info) => this.#onClose(info),
      onStatus: (status) => this.#emit("connection", status),
      // A text on its way waits for its echo: a socket silent meanwhile is taken for dead.
      owed: () =>
        [...this.store.pending.values()].some(
          (entry) => entry.type === "T" && entry.status === "sending",
        ),
    });
    /** Milliseconds this tab adds to the wait of a throttled text (see #waitIfThrottled). */
    this.throttleOffset = Math.random() * 250;
    /** When the texts may go again after a refusal that said to wait (Date.now()). */
    this.textsResumeAt = 0;
    this.textTimer = null;
    /** local_ids of texts this tab has held pending: the saved ones it may remove. */
    this.ownPending = new Set();
    this.store.addEventListener("change", (event) => {
      // (a history page may confirm restored texts too)
      if (["message", "pending", "history"].includes(event.detail.kind)) {
        this.#savePending();
        this.#pumpTexts(); // (an echo, a failure or a discard lets the next text go)
      }
    });
  }

  get me() {
    return this.store.me;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Load limits and history, then connect. Emits `lost` if this browser is not a member. */
  async start() {
    this.#restorePending();
    this.loadLimits();
    for (let attempt = 0; !this.stopped; attempt += 1) {
      try {
        await this.#loadHistory();
        break;
      } catch (error) {
        if (error.status === 403 || error.status === 404) {
          this.#lost(error.status === 404 ? "gone" : "left");
          return;
        }
        const delay = backoffDelay(attempt);
        this.#emit("connection", { state: "waiting", retryAt: Date.now() + delay });
        await sleep(delay);
      }
    }
    if (!this.stopped) this.connection.start();
  }

  stop() {
    this.stopped = true;
    this.connection.stop();
    for (const abort of this.uploads.values()) abort();
    this.uploads.clear();
    this.uploadQueue = [];
    clearTimeout(this.uploadTimer);
    clearTimeout(this.textTimer);
  }

  async loadLimits() {
    try {
      this.limits = await getLimits();
      this.#emit("limits", { limits: this.limits });
    } catch {
      // Asked again when the socket opens.
    }
    return this.limits;
  }

  #socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const after = this.store.maxSeq === null ? "" : `?after=${this.store.maxSeq}`;
    return `${scheme}//${location.host}/ws/chat/${encodeURIComponent(this.id)}/${after}`;
  }

  /**
   * The newest HISTORY_LIMIT messages. The last page is fetched first and earlier pages
   * after it: a message arriving in between shifts the window forward, which can repeat a
   * message at a page edge (dropped by id) but never skip one.
   */
  async #loadHistory() {
    const params = { limit: HISTORY_LIMIT };
    const newest = await getMessages(this.id, { ...params, page: "last" });
    const pages = Math.max(1, Math.ceil((newest.count ?? 0) / PAGE_SIZE));
    const batches = [newest.results ?? []];
    for (let page = pages - 1; page >= 1; page -= 1) {
      batches.push((await getMessages(this.id, { ...params, page })).results ?? []);
    }
    this.store.addMany(batches.flat(), { resume: true });
  }

  /** Load up to a page of messages older than the oldest one shown. */
  async loadOlder() {
    const oldest = this.store.messages[0];
    if (!oldest) return 0;
    const data = await getMessages(this.id, { until: oldest.time, limit: PAGE_SIZE });
    const added = this.store.addMany(data.results ?? [], { older: true });
    if (!added) {
      this.store.noMoreOlder = true;
      this.store.emit("history", { added, older: true });
    }
    return added;
  }

  #onOpen() {
    this.failedAttempts = 0;
    if (!this.limits) this.loadLimits();
    this.#pumpTexts();
    this.uploadRetryAt = 0; // the server is back: at once
    this.#pumpUploads();
  }

  #onFrame(frame) {
    if (frame.message && typeof frame.message === "object") {
      this.store.add(frame.message, { resume: true, live: true });
    }
    if (frame.state && typeof frame.state === "object") this.store.applyState(frame.state);
    if (frame.error && typeof frame.error === "object") this.#onError(frame.error);
  }

  /**
   * An error frame `{code, detail, local_id}` (`detail` a text; `errors`, `retry_after` when
   * they apply): a notice, and my message marked as failed.
   * The refusals a person may meet are said in their language; others in the server's words.
   */
  #onError(error) {
    if (this.#waitIfThrottled(error)) return;
    const failure = refusal(error);
    if (typeof error.local_id === "string" && this.store.pending.has(error.local_id)) {
      this.store.updatePending(error.local_id, { status: "failed", error: failure });
    }
    this.#emit("notice", { kind: "error", error: failure, code: error.code });
  }

  /**
   * A text of mine refused for now (too fast, or the server's storage away): back in the
   * queue, first still, and the queue waits what the server said.
   */
  #waitIfThrottled(error) {
    const entry = typeof error.local_id === "string" && this.store.pending.get(error.local_id);
    if (!entry || entry.type !== "T") return false;
    // (`detail` is a text; a server of before put `retry_after` in it, an object then)
    const wait = error.retry_after ?? error.detail?.retry_after;
    if (error.code === "unavailable") {
      const seconds = Number.isFinite(wait) && wait > 0 ? wait : UNAVAILABLE_WAIT;
      this.textsResumeAt = Date.now() + Math.min(seconds, UNAVAILABLE_WAIT_MAX) * 1000;
      this.store.updatePending(entry.localId, { status: "queued", held: "server" });
      return true;
    }
    if (error.code !== "throttled") return false;
    if (!Number.isFinite(wait) || wait > THROTTLED_WAIT_MAX) return false;
    const throttled = (entry.throttled ?? 0) + 1;
    if (throttled > MAX_THROTTLED) return false;
    // An offset of this tab's: two tabs' texts do not come back at the same instant.
    this.textsResumeAt = Date.now() + wait * 1000 + this.throttleOffset;
    this.store.updatePending(entry.localId, { status: "queued", throttled });
    return true;
  }

  /**
   * Texts go one at a time, in the order written, each once the one before it is echoed
   * or refused for good: the server answers a socket's frames in order, but a refusal
   * that says to wait (too fast) must hold back every text behind it, or a later text
   * would take the slot the earlier one waits for and be stored before it. While the
   * queue waits (`textsResumeAt`), a new text waits behind it. The socket down, the queue
   * waits for it to open again (#onOpen).
   */
  #pumpTexts() {
    clearTimeout(this.textTimer);
    if (this.stopped || !this.connection.isOpen) return;
    let next = null;
    for (const entry of this.store.pending.values()) {
      if (entry.type !== "T" || entry.status === "failed") continue;
      if (entry.status === "sending") return; // on its way: its answer pumps again
      next ??= entry;
    }
    if (!next) return;
    const wait = this.textsResumeAt - Date.now();
    if (wait > 0) {
      this.textTimer = setTimeout(() => this.#pumpTexts(), wait);
      return;
    }
    this.#sendText(next);
  }

  #onClose({ opened, code }) {
    if (code === CLOSE_GONE) {
      this.#lost("gone");
      return;
    }
    for (const entry of this.store.pending.values()) {
      if (entry.status === "sending") this.store.updatePending(entry.localId, { status: "queued" });
    }
    // Who is working is only told when it changes: while away we may miss the end of it.
    // Who is online is not known while away either (people come and go unseen): unknown,
    // not shown as current, until the next socket's first frame (a `state`) says again.
    if (this.store.working.size || this.store.online) {
      this.store.working = new Set();
      this.store.online = null;
      this.store.emit("state");
    }
    if (opened) return;
    // A refused handshake looks like any other failure in the browser: ask, now and then,
    // whether this browser still belongs to the conversation.
    this.failedAttempts += 1;
    if (this.failedAttempts % 3 === 2) this.#checkMembership();
  }

  async #checkMembership() {
    try {
      const conversation = await getConversation(this.id);
      if (conversation.my_participant_id !== this.me) this.#lost("left");
    } catch (error) {
      if (error.status === 404) this.#lost("gone");
      else if (error.status === 403) this.#lost("left");
    }
  }

  #lost(reason) {
    this.stop();
    if (reason === "gone") {
      this.gone = true; // (nothing is saved for it from now on)
      forgetConversation(this.id);
    }
    this.#emit("lost", { reason });
  }

  /** Send a text message (a reply when `quotedId`). */
  sendText(text, quotedId = null) {
    const entry = {
      localId: newLocalId(),
      type: "T",
      text,
      quotedId,
      status: "queued",
      time: new Date().toISOString(),
    };
    this.store.addPending(entry); // (sent when its turn comes: #pumpTexts)
    return entry;
  }

  /** Choose an option: its text as a new message quoting the message that offered it. */
  chooseOption(message, option) {
    return this.sendText(option, message.id);
  }

  #sendText(entry) {
    const frame = { type: "T", text: entry.text, local_id: entry.localId };
    if (entry.quotedId) frame.quoted_message_id = entry.quotedId;
    if (this.connection.send(frame)) {
      this.store.updatePending(entry.localId, { status: "sending", held: null });
    }
  }

  /** Whether a file picked here is not stored yet: unlike a text, it is not kept across a
   * reload (the page asks before it goes: app.js). */
  holdsUnsentFiles() {
    return [...this.store.pending.values()].some((entry) => entry.file);
  }

  /**
   * Upload a file message; the caller has checked it against the limits.
   *
   * @param {Blob} file
   * @param {{kind: string, text?: string, quotedId?: string|null, fileName?: string}} how
   */
  sendFile(file, { kind, text = "", quotedId = null, fileName }) {
    const previewable = ["i", "v", "a", "V"].includes(kind);
    const entry = {
      localId: newLocalId(),
      type: kind,
      text,
      quotedId,
      file,
      fileName: fileName ?? file.name ?? "file",
      size: file.size,
      previewUrl: previewable ? URL.createObjectURL(file) : null,
      status: "uploading",
      progress: 0,
      time: new Date().toISOString(),
    };
    this.store.addPending(entry);
    this.#queueUpload(entry);
    return entry;
  }

  /**
   * Files go up one at a time, in the order they were sent, so that they are stored (and
   * shown to everyone) in that order: parallel uploads would store a small file picked
   * second before a large one picked first. Sharing the bandwidth, they would not end
   * sooner either. A failed file does not hold the others back; one waiting for the
   * server does (it is the next to go once the connection is back).
   */
  #queueUpload(entry) {
    if (!this.uploadQueue.includes(entry.localId)) this.uploadQueue.push(entry.localId);
    // Its turn comes (#upload says "uploading" then, at once if it is the first).
    this.store.updatePending(entry.localId, { status: "next", progress: 0, error: null });
    this.#pumpUploads();
  }

  #pumpUploads() {
    if (this.uploads.size || this.stopped) return;
    while (this.uploadQueue.length) {
      const entry = this.store.pending.get(this.uploadQueue[0]);
      if (!entry || entry.status === "failed") {
        this.uploadQueue.shift(); // discarded, or given up on
        continue;
      }
      if (entry.status === "waiting") {
        // Waiting for the server: again once the socket is back (#onOpen), or, the socket
        // up, when its next try is due (sending another file does not hurry it).
        if (!this.connection.isOpen) return;
        const wait = this.uploadRetryAt - Date.now();
        if (wait > 0) {
          clearTimeout(this.uploadTimer);
          this.uploadTimer = setTimeout(() => this.#pumpUploads(), wait);
          return;
        }
      }
      this.#upload(entry);
      return;
    }
  }

  #uploadDone(localId) {
    if (this.uploadQueue[0] === localId) this.uploadQueue.shift();
    this.#pumpUploads();
  }

  async #upload(entry) {
    if (this.uploads.has(entry.localId)) return;
    this.store.updatePending(entry.localId, { status: "uploading", progress: 0, error: null });
    const fields = { type: entry.type, text: entry.text, local_id: entry.localId };
    if (entry.quotedId) fields.quoted_message_id = entry.quotedId;
    const { promise, abort } = uploadMessage(this.id, fields, entry.file, entry.fileName, (f) =>
      this.store.setProgress(entry.localId, f),
    );
    this.uploads.set(entry.localId, abort);
    const { status, body } = await promise;
    this.uploads.delete(entry.localId);
    if (status === -1 || !this.store.pending.has(entry.localId)) {
      this.#uploadDone(entry.localId); // cancelled, or discarded meanwhile
      return;
    }
    if (status === 200 || status === 201) {
      // The stored message; its echo on the socket follows and is dropped by id.
      this.store.add(body);
      this.store.updatePending(entry.localId, { status: "sending" });
      this.#uploadDone(entry.localId);
      return;
    }
    if (TRANSIENT.has(status) && (entry.attempts ?? 0) < MAX_UPLOAD_ATTEMPTS) {
      // The server is away: try again as soon as the socket is back. If the socket is up
      // and only uploads fail (a proxy), try a few times more, then give up. It stays
      // first in the queue meanwhile.
      const attempts = this.connection.isOpen ? (entry.attempts ?? 0) + 1 : 0;
      this.store.updatePending(entry.localId, { status: "waiting", attempts });
      this.uploadRetryAt = Date.now() + UPLOAD_RETRY_MS;
      this.#pumpUploads(); // (sets the timer for the next try)
      return;
    }
    if (status === 415 && this.#asAttachment(entry)) return;
    // The server's limits may have changed since the page loaded them: the next file is
    // checked against the current ones (and the person told before it goes up).
    if (status === 413) this.loadLimits();
    this.store.updatePending(entry.localId, { status: "failed", error: uploadError(status, body) });
    this.#uploadDone(entry.localId);
  }

  /**
   * A file the server did not take as the image, video or audio its type announced (its
   * content is something else: 415) goes again, at once, as a plain attachment, when
   * attachments are taken: tried again as it was, it would only fail again. Returns
   * whether it does.
   */
  #asAttachment(entry) {
    if (!["i", "v", "a"].includes(entry.type) || !checkFile(entry.file, this.limits, "A").ok) {
      return false;
    }
    if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
    this.store.updatePending(entry.localId, { type: "A", previewUrl: null });
    this.#queueUpload(entry); // (still first in the queue)
    return true;
  }

  /**
   * Try a failed message again, with the same local_id; `withoutQuote`: as a plain message
   * (the one it quoted is not available).
   */
  retry(localId, { withoutQuote = false } = {}) {
    const entry = this.store.pending.get(localId);
    if (!entry) return;
    if (withoutQuote) entry.quotedId = null;
    entry.attempts = 0;
    entry.throttled = 0;
    if (entry.type === "T") {
      this.store.updatePending(localId, { status: "queued", error: null }); // (pumps)
    } else {
      this.#queueUpload(entry);
    }
  }

  /** Give up on a message of mine that is not confirmed yet. */
  discard(localId) {
    this.store.removePending(localId);
    this.uploads.get(localId)?.(); // (its end starts the next)
    this.uploadQueue = this.uploadQueue.filter((queued) => queued !== localId);
    this.#pumpUploads();
  }

  /**
   * The message box's draft, kept like the pending texts (a reload, a closed tab, another
   * tab of the conversation): `{text, replyTo}` (the text as typed, even one too long to
   * send; the id of the message it replies to), or null.
   */
  get draft() {
    const saved = storage.getJSON(`draft.${this.id}`, null);
    if (!saved || typeof saved !== "object") return null;
    const text = typeof saved.text === "string" ? saved.text : "";
    const replyTo = typeof saved.replyTo === "string" ? saved.replyTo : null;
    return text || replyTo ? { text, replyTo } : null;
  }

  /** Keep the draft; an empty one (sent, or emptied) is forgotten. */
  saveDraft(text, replyTo = null) {
    if (this.gone) return;
    const key = `draft.${this.id}`;
    if (text || replyTo) storage.setJSON(key, { text, replyTo });
    else storage.remove(key);
  }

  /**
   * Pending texts survive a reload (files cannot be kept); a failed one stays failed, with
   * its reason, until the person retries it (as after a reconnect: seen to fail, it is not
   * sent behind their back). Other tabs of the conversation keep theirs under the same
   * key: what this tab never held is kept as it is.
   */
  #savePending() {
    if (this.gone) return;
    const key = `pending.${this.id}`;
    const mine = [...this.store.pending.values()].filter((entry) => entry.type === "T");
    for (const entry of mine) this.ownPending.add(entry.localId);
    const saved = storage.getJSON(key, []);
    const others = (Array.isArray(saved) ? saved : []).filter(
      (item) => typeof item?.localId === "string" && !this.ownPending.has(item.localId),
    );
    // Forget what is neither pending here nor saved: nothing left to remove (bounded).
    const stillSaved = new Set((Array.isArray(saved) ? saved : []).map((item) => item?.localId));
    for (const localId of this.ownPending) {
      if (!this.store.pending.has(localId) && !stillSaved.has(localId)) {
        this.ownPending.delete(localId);
      }
    }
    const texts = [
      ...others,
      ...mine.map(({ localId, text, quotedId, time, status, error }) =>
        status === "failed"
          ? { localId, text, quotedId, time, failed: true, error: error ?? null }
          : { localId, text, quotedId, time },
      ),
    ];
    if (texts.length) storage.setJSON(key, texts);
    else storage.remove(key);
  }

  #restorePending() {
    const saved = storage.getJSON(`pending.${this.id}`, []);
    for (const item of Array.isArray(saved) ? saved : []) {
      if (typeof item?.localId !== "string" || typeof item.text !== "string") continue;
      const { failed, error, ...text } = item;
      this.store.addPending({
        ...text,
        type: "T",
        status: failed ? "failed" : "queued",
        error: failed ? (error ?? null) : null,
      });
    }
  }
}

/**
 * What to tell the person about a refused message: `{key}` or `{text}` (in the server's
 * words), `final` when sending it again cannot succeed, `unquote` when it may without its
 * quote. Field errors are read from `errors` (`detail` only says them in the server's
 * language, with their field names).
 */
function refusal(error) {
  const code = typeof error.code === "string" ? error.code : "";
  const fields = error.errors && typeof error.errors === "object" ? error.errors : {};
  if (Object.hasOwn(fields, "quoted_message_id")) {
    return { key: "refused.quote_missing", final: true, unquote: true };
  }
  const failure = Object.hasOwn(REFUSALS, code)
    ? { key: REFUSALS[code] }
    : { text: detailText(error.detail) || code };
  if (FINAL.has(code)) failure.final = true;
  return failure;
}

/** What to tell the person about a refused upload. */
function uploadError(status, body) {
  if (status === 413) {
    // Final: the same file would only be refused again (no Try again).
    const max = /MAX\s*=\s*(\d+)/.exec(detailText(body))?.[1];
    // (a proxy's own 413 page names no limit)
    if (!max) return { key: "upload.too_large_server_unsized", final: true };
    return { key: "upload.too_large_server", params: { max: Number(max) }, final: true };
  }
  if (status === 403) return { key: "upload.forbidden" };
  if (status === 0) return { key: "upload.unreachable" };
  const text = detailText(body);
  return text ? { text } : { key: "upload.failed_status", params: { status } };
}
