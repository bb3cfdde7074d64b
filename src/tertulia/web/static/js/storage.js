/**
 * Web storage that never throws: storage may be disabled, full or private. Losing a value
 * only costs convenience (the page falls back to the lobby), never correctness.
 *
 * `storage` is `localStorage`, shared by every tab of the browser (the language, the
 * nickname, pending texts and the message box's draft, the last conversation entered); `tabStorage` is
 * `sessionStorage`, this tab's own (the conversation it is in), kept across its reloads.
 */

const PREFIX = "tertulia.";

function webStorage(area) {
  return {
    get(key) {
      try {
        return window[area].getItem(PREFIX + key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window[area].setItem(PREFIX + key, value);
      } catch {
        // Not persisted; the page still works for this visit.
      }
    },
    remove(key) {
      try {
        window[area].removeItem(PREFIX + key);
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
}

export const storage = webStorage("localStorage");
export const tabStorage = webStorage("sessionStorage");

/** A sender's id for a message: 32 lowercase hex characters, as BLAB's clients make them. */
export function newLocalId() {
  // getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
