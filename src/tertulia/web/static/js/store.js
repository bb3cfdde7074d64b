/**
 * What the page knows about one conversation, without any DOM: the messages (each once,
 * by id, in display order), my messages still waiting for the server's echo, the
 * participants, who is online and which bots are working. Views listen to its `change`
 * events, whose `detail.kind` says what changed.
 */

/** A sortable key for a wire time ("…:39Z" and "…:39.166537Z" both become 6 digits). */
export function timeKey(time) {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z?$/.exec(String(time ?? ""));
  if (!match) return String(time ?? "");
  return `${match[1]}.${(match[2] ?? "").padEnd(6, "0").slice(0, 6)}`;
}

/** Display order: by time (as the BLAB front end), then by `seq`, then by id. */
export function compareMessages(a, b) {
  const ta = timeKey(a.time);
  const tb = timeKey(b.time);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const bySeq = (a.seq ?? 0) - (b.seq ?? 0);
  if (bySeq !== 0) return bySeq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The system events that say a participant came or went. */
const PRESENCE_EVENTS = new Set(["participant-joined", "participant-left"]);

function isMessage(value) {
  return (
    Boolean(value) &&
    typeof value === "object" &&
    typeof value.id === "string" &&
    typeof value.type === "string"
  );
}

export class ConversationStore extends EventTarget {
  /**
   * @param {{me: string, participants?: Array, name?: string|null}} init the join or
   *   create response's `my_participant_id`, `participants` and `name`.
   */
  constructor({ me, participants = [], name = null }) {
    super();
    this.me = me;
    this.name = name;
    /** Confirmed messages, sorted by compareMessages. */
    this.messages = [];
    this.byId = new Map();
    /** My unconfirmed messages by local_id, in the order they were written. */
    this.pending = new Map();
    this.participants = new Map();
    /** Ids with an open socket; null until a `state` frame says. */
    this.online = null;
    /** Bot ids at work (the future `state.working` key). */
    this.working = new Set();
    /** The highest `seq` received, to resume with `?after=`. */
    this.maxSeq = null;
    /**
     * Each participant's latest joined or left system message: the `state` frame lists
     * everyone who ever took part, left or not, and a bot's absence from `online` says
     * nothing (internal bots never have a socket), so the timeline tells who has left.
     */
    this.presence = new Map();
    /** The conversation-ended system message, once seen. */
    this.ended = null;
    /**
     * The newest message (in display order) that offers options: only its buttons are
     * live. An older prompt's option, chosen after a newer prompt came, would quote a
     * question the manager no longer asks, and be misrouted.
     */
    this.optionsMessage = null;
    /** Set when asking for older messages brought nothing new. */
    this.noMoreOlder = false;
    this.setParticipants(participants);
  }

  emit(kind, detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail: { kind, ...detail } }));
  }

  setParticipants(list) {
    for (const p of list ?? []) {
      if (!p || typeof p.id !== "string") continue;
      this.participants.set(p.id, {
        id: p.id,
        name: String(p.name ?? ""),
        type: p.type === "B" ? "B" : "H",
      });
    }
  }

  /** Apply a `state` frame: participants, conversation_name, online, working. */
  applyState(state) {
    if (Array.isArray(state.participants)) this.setParticipants(state.participants);
    if ("conversation_name" in state) this.name = state.conversation_name ?? null;
    // A frame without one of these keys says nothing about it: keep what we knew.
    if (Array.isArray(state.online)) this.online = new Set(state.online);
    if (Array.isArray(state.working)) this.working = new Set(state.working);
    this.emit("state");
  }

  participant(id) {
    return this.participants.get(id) ?? null;
  }

  get(id) {
    return this.byId.get(id) ?? null;
  }

  /**
   * Add a message from the server. Returns true when it was new.
   *
   * @param {object} message the wire representation (PROTOCOL 5.1)
   * @param {{resume?: boolean, live?: boolean, silent?: boolean}} how `resume`: it came
   *   through the socket or the initial history, so its `seq` is a safe resume point;
   *   `live`: it just happened (worth announcing); `silent`: emit nothing (batches).
   */
  add(message, { resume = false, live = false, silent = false } = {}) {
    if (!isMessage(message)) return false;
    if (resume && Number.isInteger(message.seq)) {
      this.maxSeq = Math.max(this.maxSeq ?? 0, message.seq);
    }
    // My own message coming back is the only acknowledgement there is (PROTOCOL 4.3).
    let settled = null;
    if (message.sender_id === this.me && message.local_id && this.pending.has(message.local_id)) {
      settled = this.pending.get(message.local_id);
      this.pending.delete(message.local_id);
    }
    const isNew = !this.byId.has(message.id);
    if (isNew) {
      this.#insert(message);
      if (message.type === "S" && message.event === "conversation-ended") this.ended = message;
      if (message.type === "S" && PRESENCE_EVENTS.has(message.event)) this.#notePresence(message);
    }
    if (settled?.previewUrl) URL.revokeObjectURL(settled.previewUrl);
    if (!silent && (isNew || settled))
      this.emit("message", { message, live: live && isNew, settled });
    return isNew;
  }

  #notePresence(message) {
    const id = message.additional_metadata?.participant_id;
    if (typeof id !== "string") return;
    const known = this.presence.get(id);
    if (!known || compareMessages(known, message) < 0) this.presence.set(id, message);
  }

  /**
   * Whether a participant has left: their latest joined or left message says so (as far
   * as the loaded history shows) and no `state` frame says they are online again.
   */
  hasLeft(id) {
    if (this.online?.has(id)) return false;
    return this.presence.get(id)?.event === "participant-left";
  }

  /** Add a batch (history); one `history` event. Returns how many were new. */
  addMany(messages, { resume = false, older = false } = {}) {
    let added = 0;
    for (const message of messages ?? []) {
      if (this.add(message, { resume, silent: true })) added += 1;
    }
    this.emit("history", { added, older });
    return added;
  }

  #insert(message) {
    const list = this.messages;
    let low = 0;
    let high = list.length;
    // Most messages are the newest: check the end before searching.
    if (high === 0 || compareMessages(list[high - 1], message) <= 0) low = high;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (compareMessages(list[middle], message) <= 0) low = middle + 1;
      else high = middle;
    }
    list.splice(low, 0, message);
    this.byId.set(message.id, message);
    const offers =
      Array.isArray(message.options) && message.options.some((o) => typeof o === "string");
    if (offers && (!this.optionsMessage || compareMessages(this.optionsMessage, message) < 0)) {
      this.optionsMessage = message;
    }
  }

  /** A message of mine the server has not echoed yet. */
  addPending(entry) {
    this.pending.set(entry.localId, entry);
    this.emit("pending", { entry });
  }

  updatePending(localId, patch) {
    const entry = this.pending.get(localId);
    if (!entry) return;
    Object.assign(entry, patch);
    this.emit("pending", { entry });
  }

  /** Upload progress: its own event kind, so views can update a bar without re-rendering. */
  setProgress(localId, fraction) {
    const entry = this.pending.get(localId);
    if (!entry) return;
    entry.progress = fraction;
    this.emit("progress", { entry });
  }

  removePending(localId) {
    const entry = this.pending.get(localId);
    if (!entry) return;
    this.pending.delete(localId);
    if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
    this.emit("pending", { entry, removed: true });
  }

  /** Whether older messages than the loaded ones may exist (every conversation starts with
   * conversation-created, so once it is loaded there is nothing earlier). */
  get olderAvailable() {
    const first = this.messages[0];
    return (
      Boolean(first) &&
      !this.noMoreOlder &&
      !(first.type === "S" && first.event === "conversation-created")
    );
  }
}
