/**
 * Which kind of file message a file becomes, and whether the server's limits
 * (GET /api/chat/limits/, PROTOCOL 3.4 and 5.8) let it through: checked before any upload.
 */

/** The limit key of each file message type. */
export const LIMIT_KEYS = {
  i: "MAX_IMAGE_SIZE",
  v: "MAX_VIDEO_SIZE",
  a: "MAX_AUDIO_SIZE",
  V: "MAX_VOICE_SIZE",
  A: "MAX_ATTACHMENT_SIZE",
};

/** The message type for a MIME type: image, video, audio, else attachment. */
export function kindOf(mimeType) {
  const type = String(mimeType ?? "").toLowerCase();
  if (type.startsWith("image/")) return "i";
  if (type.startsWith("video/")) return "v";
  if (type.startsWith("audio/")) return "a";
  return "A";
}

export function limitOf(limits, kind) {
  const value = limits?.[LIMIT_KEYS[kind]];
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Check a file against the limits.
 *
 * An image, video or audio file whose kind is disabled still goes as a plain attachment
 * when attachments are enabled (as BLAB's own attachment button would send it).
 *
 * @param {{size: number, type: string}} file
 * @param {object} limits the five limits
 * @param {string} [kind] force a type (voice notes are "V")
 * @returns {{ok: true, kind: string} |
 *   {ok: false, reason: "empty"|"too_large"|"not_accepted", kind: string, limit: number}}
 */
export function checkFile(file, limits, kind = kindOf(file.type)) {
  if (!file.size) return { ok: false, reason: "empty", kind, limit: 0 };
  let chosen = kind;
  if (!limitOf(limits, chosen) && chosen !== "V" && limitOf(limits, "A")) chosen = "A";
  const limit = limitOf(limits, chosen);
  if (!limit) return { ok: false, reason: "not_accepted", kind, limit: 0 };
  if (file.size > limit) return { ok: false, reason: "too_large", kind: chosen, limit };
  return { ok: true, kind: chosen };
}

/** Whether any file can be attached at all. */
export function canAttach(limits) {
  return ["i", "v", "a", "A"].some((kind) => limitOf(limits, kind) > 0);
}

/** The file picker's `accept`: anything when attachments are on, else the media kinds allowed. */
export function acceptFor(limits) {
  if (!limits || limitOf(limits, "A")) return "";
  const types = { i: "image/*", v: "video/*", a: "audio/*" };
  return Object.entries(types)
    .filter(([kind]) => limitOf(limits, kind))
    .map(([, type]) => type)
    .join(",");
}
