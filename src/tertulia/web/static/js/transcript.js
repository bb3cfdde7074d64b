/**
 * The conversation as plain text, for the person to keep: every message people can see,
 * oldest first, read over REST a page (100 messages) at a time, one line each:
 * `[date, time] name: text`, a file as its name and address, a system event as its
 * sentence, a reply followed by an indented `> name: snippet` line of what it answers. Names throughout,
 * never "You": the file is read later, and by others.
 */

import { getMessages } from "./api.js";
import { formatDateTime, t } from "./i18n.js";
import { nameOf, systemText } from "./message-view.js";
import { safeUrl, snippet } from "./text.js";

/** The whole visible history (deduplicated by id: messages may arrive while it is read). */
async function allMessages(conversationId) {
  const found = new Map();
  for (let page = 1; ; page += 1) {
    const data = await getMessages(conversationId, { page });
    for (const message of data.results ?? []) found.set(message.id, message);
    if (!data.next) return [...found.values()];
  }
}

/**
 * What a file is called: its name, whatever its kind (an image too, not "Photo"); a voice
 * note by its kind, as its name is always "blob" (BLAB's convention); the kind when the
 * server has no name (an external file).
 */
function fileLabel(message) {
  if (message.type !== "V" && message.file_name) return message.file_name;
  return snippet({ ...message, text: "" }, 200);
}

function line(message, store, byId) {
  const name = (id) => nameOf(store, id, { you: false });
  const when = `[${formatDateTime(new Date(message.time), "short")}]`;
  if (message.type === "S") return `${when} — ${systemText(message, store, { you: false })}`;
  const parts = [];
  const url = safeUrl(message.file_url ?? message.external_file_url ?? "");
  if (url) parts.push(`${fileLabel(message)} <${new URL(url, location.href)}>`);
  if (message.text) parts.push(message.text);
  const lines = [`${when} ${name(message.sender_id)}: ${parts.join(" ")}`];
  const quoted = message.quoted_message_id && byId.get(message.quoted_message_id);
  // (under the reply, indented as part of it: above, it read as part of the line before)
  if (quoted) lines.push(`    > ${name(quoted.sender_id)}: ${snippet(quoted, 80)}`);
  return lines.join("\n");
}

/** The transcript of a conversation, and the name of its file. */
export async function transcript(conversationId, store) {
  const messages = await allMessages(conversationId);
  const byId = new Map(messages.map((message) => [message.id, message]));
  const now = new Date();
  const title = store.name || t("conversation.untitled");
  const text = [
    title,
    t("transcript.saved", { time: formatDateTime(now, "long") }),
    "",
    ...messages.map((message) => line(message, store, byId)),
    "",
  ].join("\n");
  // The person's own date, as the "saved" line says it (toISOString's is UTC's: a day
  // off for part of every day west or east of Greenwich).
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  // (what a file name cannot hold dropped, and the spaces it leaves: "Books & club")
  const kept = title.replace(/[^\p{L}\p{N} _-]+/gu, "").replace(/\s+/g, " ").trim();
  const base = Array.from(kept).slice(0, 60).join("").trim() || "conversation";
  return { text, fileName: `${base} ${day}.txt` };
}

/** Offer `text` to the browser as a file download. */
export function download(text, fileName) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
