/**
 * One conversation's WebSocket, kept open: after any close it reconnects with exponential
 * backoff and jitter (0.5 s doubling up to 8 s), and at once when the browser comes back
 * online or the tab becomes visible. The URL is asked for on each attempt, so the caller
 * can resume with `?after=<highest seq seen>`.
 */

const FIRST_DELAY = 500;
const MAX_DELAY = 8000;
/** A socket that stayed open this long counts as healthy: the backoff starts over. */
const HEALTHY_AFTER = 5000;

/** The wait before attempt number `attempt` (0-based), with ±20 % jitter. */
export function backoffDelay(attempt) {
  const base = Math.min(MAX_DELAY, FIRST_DELAY * 2 ** attempt);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class Connection {
  /**
   * @param {() => string} url the socket URL for the next attempt
   * @param {object} handlers `onOpen()`, `onFrame(object)`, `onClose({opened, code})`,
   *   `onStatus({state, retryAt?})` with state "connecting", "open" or "waiting"
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.healthyTimer = null;
    this.stopped = true;
    this.retryNow = this.retryNow.bind(this);
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.retryNow();
    };
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.retryNow);
    document.addEventListener("visibilitychange", this.onVisible);
    this.#connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.retryNow);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearTimeout(this.timer);
    clearTimeout(this.healthyTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
  }

  /** Skip the remaining wait (the "Retry now" button, coming back online). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.#connect();
  }

  /** Send one JSON frame; false when the socket is not open (the caller keeps it pending). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  #status(state, extra = {}) {
    this.handlers.onStatus?.({ state, ...extra });
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
    let opened = false;
    this.#status("connecting");
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      opened = true;
      this.#status("open");
      this.healthyTimer = setTimeout(() => {
        this.attempt = 0;
      }, HEALTHY_AFTER);
      this.handlers.onOpen?.();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
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
      if (this.stopped) return;
      this.handlers.onClose?.({ opened, code: event.code });
      this.#schedule();
    });
  }

  #schedule() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.#status("waiting", { retryAt: Date.now() + delay });
    this.timer = setTimeout(() => this.#connect(), delay);
  }
}
