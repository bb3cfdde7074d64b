/**
 * One conversation's WebSocket, kept open: after any close it reconnects with exponential
 * backoff and jitter (0.5 s doubling up to 8 s). The URL is asked for on each attempt, so
 * the caller can resume with `?after=<highest seq seen>`.
 *
 * A socket can also die without a close: a NAT or a proxy forgets the flow, a laptop
 * sleeps, a phone freezes the page. The TCP socket stays "open" and nothing flows, and the
 * browser notices nothing (a page cannot send WebSocket pings; the server's pings, when
 * they fail, end the server's side only). So the socket is replaced, at once and with no
 * frame of its own, when it is likely dead:
 *
 * - it owes an answer (the caller's `owed()`: a text sent and not echoed yet) and nothing
 *   at all has come from the server for SILENT_LIMIT;
 * - the page's timers ran late by more than ASLEEP_AFTER (the machine slept, or the page
 *   was frozen): a clock checked every WAKE_CHECK, which costs no traffic;
 * - the browser comes back online (the network changed), or the page is shown after
 *   being hidden for HIDDEN_LONG.
 *
 * The browser going offline (the window's `offline` event) is taken at its word: the
 * socket is dropped at once, as a dead one is, and the backoff starts, so the page says
 * the connection is lost now rather than when a text's echo fails to come. `online` then
 * connects at once, unless a socket is already on its way.
 *
 * A handshake that has not ended after OPEN_TIMEOUT (a new socket into a dead network) is
 * given up and tried again after the backoff.
 *
 * Resuming with `?after=` and resending the pending texts with their local_id make a
 * replacement lose nothing and repeat nothing, so a needless one only costs a handshake.
 *
 * A socket counts as connected ("open", `onOpen`) once the server has served it: its first
 * frame (the server's `state`) has come, not when the handshake ends. A server that cannot
 * serve (its database or broker away: 1013; too many sockets of the participant: 4429)
 * accepts the socket and closes it at once, which is no reconnection.
 */

const FIRST_DELAY = 500;
const MAX_DELAY = 8000;
/** A socket that stayed open this long counts as healthy: the backoff starts over. */
const HEALTHY_AFTER = 5000;
/** Silence, while an answer is owed, after which the socket is taken for dead. */
export const SILENT_LIMIT = 10_000;
/** A handshake not done by then is given up, and tried again after the backoff. */
export const OPEN_TIMEOUT = 10_000;
/** How often the page's clock is checked for a sleep. */
const WAKE_CHECK = 15_000;
/**
 * How late a check may come before it means a sleep: beyond what a hidden page's timers
 * are delayed by (Chrome runs them once a minute at worst).
 */
const ASLEEP_AFTER = 90_000;
/** Hidden this long, a page shown again replaces its socket. */
const HIDDEN_LONG = 60_000;
/**
 * The close code of a socket over the server's cap of sockets per participant (the person
 * has too many tabs on this conversation). Tried again slowly, or at once when the tab is
 * shown: it connects once another tab closes.
 */
export const CLOSE_TOO_MANY = 4429;
const TOO_MANY_DELAY = 10_000;
/** A socket made this recently is not replaced again by a wake, `online` or the page
 * being shown (they often come together). */
const FRESH = 2000;

/** The wait before attempt number `attempt` (0-based), with ±20 % jitter. */
export function backoffDelay(attempt) {
  const base = Math.min(MAX_DELAY, FIRST_DELAY * 2 ** attempt);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class Connection {
  /**
   * @param {() => string} url the socket URL for the next attempt
   * @param {object} handlers `onOpen()` (served: see above), `onFrame(object)`,
   *   `onClose({opened, served, code})` (`opened`: the handshake ended),
   *   `onStatus({state, retryAt?, reason?})` with state "connecting", "open" or "waiting"
   *   (reason "too_many" after a 4429), and
   *   `owed()`: whether the caller waits for the server to answer something it sent
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.healthyTimer = null;
    this.silenceTimer = null;
    this.openTimer = null;
    this.wakeTimer = null;
    this.stopped = true;
    /** Whether the current socket has been served (its first frame came). */
    this.served = false;
    /** When the current socket was made, the silence watch began, and a frame last came. */
    this.madeAt = 0;
    this.watchedAt = 0;
    this.heardAt = 0;
    this.tickAt = 0;
    this.hiddenAt = null;
    this.retryNow = this.retryNow.bind(this);
    this.onOnline = () => this.#suspect();
    this.onOffline = () => this.#offline();
    this.onVisibility = () => {
      if (document.visibilityState !== "visible") {
        this.hiddenAt ??= Date.now();
        return;
      }
      const hidden = this.hiddenAt === null ? 0 : Date.now() - this.hiddenAt;
      this.hiddenAt = null;
      if (!this.ws) this.retryNow(); // waiting to reconnect: no need to wait more
      else if (hidden >= HIDDEN_LONG) this.#suspect();
    };
  }

  /** Whether the socket is open and served (frames sent before would be lost to a 4429). */
  get isOpen() {
    return this.served && this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.hiddenAt = document.visibilityState === "visible" ? null : Date.now();
    this.tickAt = Date.now();
    this.wakeTimer = setInterval(() => this.#checkClock(), WAKE_CHECK);
    this.#connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.timer);
    clearTimeout(this.healthyTimer);
    clearTimeout(this.silenceTimer);
    clearTimeout(this.openTimer);
    clearInterval(this.wakeTimer);
    this.silenceTimer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
  }

  /**
   * Connect now: skip the remaining wait (the "Retry now" button), or replace the socket
   * there is, which may be dead without knowing it.
   */
  retryNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws) this.#drop();
    this.#connect();
  }

  /** Send one JSON frame; false when the socket is not open (the caller keeps it pending). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    this.#watchSilence();
    return true;
  }

  #status(state, extra = {}) {
    this.handlers.onStatus?.({ state, ...extra });
  }

  /** The socket may be dead (a wake, a new network): replace it unless it is brand new. */
  #suspect() {
    if (this.stopped || (this.ws && Date.now() - this.madeAt < FRESH)) return;
    this.retryNow();
  }

  /**
   * The browser says it has no network: whatever the socket looks like, nothing will flow
   * through it. Lost now (the same path as a dead socket's), and tried again after the
   * backoff; `online` cuts the wait short.
   */
  #offline() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws) this.#drop();
    this.#schedule();
  }

  /** Forget the current socket as if it had closed (its own events are ignored from now). */
  #drop() {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.healthyTimer);
    clearTimeout(this.silenceTimer);
    clearTimeout(this.openTimer);
    this.silenceTimer = null;
    const opened = ws.readyState === WebSocket.OPEN;
    const served = this.served;
    // (a dead socket's close handshake never ends; the browser gives up on it by itself)
    ws.close(4000, "replaced");
    this.handlers.onClose?.({ opened, served, code: null });
  }

  /**
   * Something was sent: watch for silence. The silence is counted from the first send since
   * the server was last heard (a text sent after the last one was answered gets the whole
   * SILENT_LIMIT, however long the watch has been running).
   */
  #watchSilence() {
    if (this.watchedAt <= this.heardAt) this.watchedAt = Date.now();
    if (this.silenceTimer) return;
    this.silenceTimer = setTimeout(() => this.#checkSilence(), SILENT_LIMIT);
  }

  #checkSilence() {
    this.silenceTimer = null;
    if (!this.isOpen || !this.handlers.owed?.()) return;
    const quiet = Date.now() - Math.max(this.watchedAt, this.heardAt);
    if (quiet >= SILENT_LIMIT) {
      this.retryNow();
    } else {
      this.silenceTimer = setTimeout(() => this.#checkSilence(), SILENT_LIMIT - quiet);
    }
  }

  #checkClock() {
    const now = Date.now();
    const late = now - this.tickAt - WAKE_CHECK;
    this.tickAt = now;
    if (late > ASLEEP_AFTER) this.#suspect();
  }

  #connect() {
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.#schedule();
      return;
    }
    this.ws = ws;
    this.madeAt = Date.now();
    this.served = false;
    let opened = false;
    this.#status("connecting");
    // A handshake into a dead network may never end, nor fail: give it up in time.
    this.openTimer = setTimeout(() => {
      if (this.ws !== ws || opened || this.stopped) return;
      this.#drop();
      this.#schedule();
    }, OPEN_TIMEOUT);
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      clearTimeout(this.openTimer);
      opened = true;
      this.heardAt = Date.now();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      this.heardAt = Date.now();
      if (!this.served) {
        this.served = true;
        this.#status("open");
        this.healthyTimer = setTimeout(() => {
          this.attempt = 0;
        }, HEALTHY_AFTER);
        this.handlers.onOpen?.();
      }
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.handlers.onFrame?.(frame);
    });
    // "error" is always followed by "close", which does the work.
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.healthyTimer);
      clearTimeout(this.silenceTimer);
      clearTimeout(this.openTimer);
      this.silenceTimer = null;
      if (this.stopped) return;
      this.handlers.onClose?.({ opened, served: this.served, code: event.code });
      this.#schedule(event.code);
    });
  }

  /** Connect again after the backoff; `code`, the close code of the socket that ended. */
  #schedule(code = null) {
    if (this.stopped) return;
    const tooMany = code === CLOSE_TOO_MANY;
    const delay = tooMany
      ? Math.round(TOO_MANY_DELAY * (0.8 + Math.random() * 0.4))
      : backoffDelay(this.attempt);
    this.attempt += 1;
    const reason = tooMany ? "too_many" : null;
    this.#status("waiting", { retryAt: Date.now() + delay, reason });
    this.timer = setTimeout(() => this.#connect(), delay);
  }
}
