/** Message text for display: links made clickable, safe URLs, short descriptions. */

import { h } from "./dom.js";
import { t } from "./i18n.js";

/**
 * What the server trims off a text before counting it (Python's `str.strip()`): unlike
 * JavaScript's `trim()`, it takes U+001C–U+001F and U+0085 as spaces and U+FEFF as not.
 */
const SERVER_TRIM =
  /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** The length of a text as the server counts it (code points, once trimmed as it trims). */
export function textLength(text) {
  return Array.from(text.replace(SERVER_TRIM, "")).length;
}

/**
 * Only what shows as nothing: spaces, zero-width and other format characters, combining
 * marks with nothing to combine with, controls, blank letters (the Hangul fillers, the
 * blank Braille pattern); what the server's `shows_nothing` refuses as a name.
 */
const NOTHING_VISIBLE =
  /^[\s\p{Cc}\p{Cf}\p{Mn}\p{Me}\p{Zs}\p{Zl}\p{Zp}\u115f\u1160\u3164\uffa0\u2800]*$/u;

/** Whether `text` shows nothing at all (sent, it would be an empty bubble). */
export function showsNothing(text) {
  return NOTHING_VISIBLE.test(text);
}

const LINK = /\bhttps?:\/\/[^\s<>"']+/gi;
/** Punctuation that ends a sentence rather than a URL. */
const TRAILING = ".,;:!?'\"";
/** Closing brackets, each with its opening one. */
const CLOSING = { ")": "(", "]": "[", "}": "{" };

/**
 * A link found in text without what ends the sentence around it: trailing punctuation,
 * and a closing bracket that closes nothing in the link ("(see https://a.example/x)"),
 * but not one that does ("https://en.wikipedia.org/wiki/Python_(programming_language)").
 */
function trimLink(url) {
  let end = url.length;
  while (end > 0) {
    const last = url[end - 1];
    const opening = CLOSING[last];
    if (TRAILING.includes(last)) {
      end -= 1;
    } else if (opening && count(url, opening, end) < count(url, last, end)) {
      end -= 1;
    } else {
      break;
    }
  }
  return url.slice(0, end);
}

function count(text, char, end) {
  let found = 0;
  for (let i = 0; i < end; i += 1) if (text[i] === char) found += 1;
  return found;
}

/** Text with its http(s) links as anchors; everything else stays plain text. */
export function richText(text) {
  const fragment = document.createDocumentFragment();
  const source = String(text ?? "");
  let last = 0;
  for (const match of source.matchAll(LINK)) {
    const url = trimLink(match[0]);
    if (!url) continue;
    fragment.append(source.slice(last, match.index));
    fragment.append(
      h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, url),
    );
    last = match.index + url.length;
  }
  fragment.append(source.slice(last));
  return fragment;
}

/**
 * A file URL the page may use: a same-origin path (uploads are relative, "/media/…") or an
 * http(s)/ftp(s) address (external files). Anything else (javascript:, data:) is refused.
 */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  // Browsers drop tabs and line breaks anywhere in an address, and read "\" as "/": so
  // "/\t/host" and "/\host" would lead to another host, as "//host" does.
  if (/[\u0000-\u001f\u007f]/.test(url)) return null;
  if (/^\/(?![/\\])/.test(url)) return url;
  return /^(https?|ftps?):\/\//i.test(url) ? url : null;
}

const KIND_LABELS = {
  i: "kind.image",
  v: "kind.video",
  a: "kind.audio",
  V: "kind.voice",
  A: "kind.attachment",
};

/**
 * A name for a text of the page's own (a tab's title): isolated between U+2068 and U+2069
 * (first strong isolate, pop directional isolate), as <bdi> does it in the page.
 */
export function isolated(text) {
  return `\u2068${text}\u2069`;
}

let graphemes = null;

/**
 * `text` cut to at most `max` characters as people see them (grapheme clusters: an emoji,
 * a family of them, a letter with its accents), the last one "…" when it is cut. Never
 * half an emoji: UTF-16 units would leave a lone surrogate.
 */
export function shorten(text, max) {
  if (text.length <= max) return text; // (as many characters at most as UTF-16 units)
  graphemes ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
  const kept = [];
  for (const { segment } of graphemes.segment(text)) {
    if (kept.length === max) return `${kept.slice(0, max - 1).join("")}…`;
    kept.push(segment);
  }
  return text;
}

/** A one-line description of a message, for quotes and announcements. */
export function snippet(message, max = 120) {
  const text = String(message.text ?? "")
    .replace(/\s+/g, " ")
    .trim();
  const kind = KIND_LABELS[message.type];
  let out = text;
  if (kind) {
    const label = message.type === "A" && message.file_name ? message.file_name : t(kind);
    out = text ? `${label} · ${text}` : label;
  }
  return shorten(out, max);
}
