/**
 * `localStorage` that never throws: storage may be disabled, full or private. Losing a
 * value only costs convenience (the page falls back to the lobby), never correctness.
 */

const PREFIX = "tertulia.";

export const storage = {
  get(key) {
    try {
      return localStorage.getItem(PREFIX + key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(PREFIX + key, value);
    } catch {
      // Not persisted; the page still works for this visit.
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(PREFIX + key);
    } catch {
      // Nothing to do.
    }
  },
  getJSON(key, fallback) {
    const raw = this.get(key);
    if (raw === null) return fallback;
    try {
      return JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  setJSON(key, value) {
    this.set(key, JSON.stringify(value));
  },
};

/** A sender's id for a message: 32 lowercase hex characters, as BLAB's clients make them. */
export function newLocalId() {
  // getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
