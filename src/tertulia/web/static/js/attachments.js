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

/**
 * The types sent as image, video or audio messages: those the server takes as such
 * (files/content.py: not SVG or any XML, not AMR, which it does not recognise) and that
 * browsers show or play. Any other file, an image/tiff, image/heif, image/x-exr, image/svg+xml
 * or audio/amr among them, goes as a plain attachment (a file to download), as it would
 * otherwise be refused (415) or shown broken.
 */
export const MEDIA_TYPES = {
  i: [
    "image/png",
    "image/apng",
    "image/jpeg",
    "image/pjpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/x-ms-bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
  ],
  v: ["video/mp4", "video/webm", "video/ogg", "video/quicktime"],
  a: [
    "audio/mpeg",
    "audio/mp3",
    "audio/ogg",
    "audio/opus",
    "audio/wav",
    "audio/wave",
    "audio/x-wav",
    "audio/vnd.wave",
    "audio/webm",
    "audio/flac",
    "audio/x-flac",
    "audio/aac",
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
  ],
};

/** The message type for a MIME type: image, video, audio (MEDIA_TYPES), else attachment. */
export function kindOf(mimeType) {
  const type = String(mimeType ?? "")
    .toLowerCase()
    .split(";")[0]
    .trim();
  for (const [kind, types] of Object.entries(MEDIA_TYPES)) {
    if (types.includes(type)) return kind;
  }
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

/** The file picker's `accept`: anything when attachments are on, else the media types allowed. */
export function acceptFor(limits) {
  if (!limits || limitOf(limits, "A")) return "";
  return Object.entries(MEDIA_TYPES)
    .filter(([kind]) => limitOf(limits, kind))
    .flatMap(([, types]) => types)
    .join(",");
}
