/**
 * Translations and locale-aware formatting. English and Brazilian Portuguese; the
 * language comes from the saved choice, else from the browser (navigator.languages).
 */

import en from "../i18n/en.js";
import ptBR from "../i18n/pt-BR.js";
import { storage } from "./storage.js";

const CATALOGS = { en, "pt-BR": ptBR };

export const LANGUAGES = [
  { code: "en", label: "English" },
  { code: "pt-BR", label: "Português" },
];

let current = "en";
/** The locale dates, times and numbers are written in (see regionalLocale). */
let regional = "en";
const listeners = new Set();

/** The language to start with: the saved choice, else the browser's first supported one. */
export function detectLanguage() {
  const saved = storage.get("language");
  if (saved && saved in CATALOGS) return saved;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const lower = String(tag ?? "").toLowerCase();
    if (lower.startsWith("pt")) return "pt-BR";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function language() {
  return current;
}

/**
 * The locale of the browser's languages that is in `code`'s language ("en-GB" for "en" in
 * a British browser, "pt-PT" for "pt-BR" in a Portuguese one), else `code` itself: dates,
 * times and numbers are written as in the person's region, not as in the catalog's.
 */
function regionalLocale(code) {
  const primary = code.split("-")[0].toLowerCase();
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    if (String(tag ?? "").split("-")[0].toLowerCase() !== primary) continue;
    try {
      return Intl.getCanonicalLocales(tag)[0];
    } catch {
      // (not a well-formed tag: try the next one)
    }
  }
  return code;
}

/** Switch language (and remember it when `remember`); listeners re-render. */
export function setLanguage(code, { remember = false } = {}) {
  current = code in CATALOGS ? code : "en";
  regional = regionalLocale(current);
  document.documentElement.lang = current;
  if (remember) storage.set("language", current);
  for (const listener of listeners) listener(current);
}

/** Call `listener(code)` after each language change; returns the unsubscribe function. */
export function onLanguageChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * The text for `key`, with `{name}` placeholders filled from `params`. A key with
 * `.one` / `.other` variants is chosen by `params.count` (Intl plural rules).
 */
export function t(key, params = {}) {
  return partsText(tParts(key, params));
}

/** The catalog's text for `key` (its plural form for `params.count`), or undefined. */
function template(key, params) {
  const catalog = CATALOGS[current];
  const entry = catalog[key] ?? en[key];
  if (entry !== undefined || !("count" in params)) return entry;
  const form = new Intl.PluralRules(current).select(params.count);
  return catalog[`${key}.${form}`] ?? catalog[`${key}.other`] ?? en[`${key}.other`];
}

/**
 * The text for `key` as parts to append to an element: as t(), but a parameter that is a
 * node (a name in a <bdi>) goes in as that node, so that a name in a sentence is laid out
 * apart from it ("سارة! joined" keeps its "!" at the name's own end).
 */
export function tParts(key, params = {}) {
  const entry = template(key, params);
  if (entry === undefined) return [key];
  return entry.split(/\{(\w+)\}/).map((part, index) => {
    if (index % 2 === 0) return part; // (text between placeholders)
    if (!(part in params)) return `{${part}}`;
    const value = params[part];
    return value instanceof Node ? value : String(value);
  });
}

/** What parts (strings and nodes, as tParts gives them) read as text. */
export function partsText(parts) {
  return parts.map((part) => (part instanceof Node ? part.textContent : String(part))).join("");
}

/** Fill `[data-i18n]` (text) and `[data-i18n-<attribute>]` elements under `root`. */
export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attribute of ["placeholder", "aria-label", "title"]) {
    const data = `data-i18n-${attribute}`;
    for (const el of root.querySelectorAll(`[${data}]`)) {
      el.setAttribute(attribute, t(el.getAttribute(data)));
    }
  }
}

const valid = (date) => date instanceof Date && !Number.isNaN(date.getTime());

/** "14:05" (or "2:05 PM"): in the current language, as the person's region writes it. */
export function formatTime(date) {
  if (!valid(date)) return "";
  return new Intl.DateTimeFormat(regional, { hour: "numeric", minute: "2-digit" }).format(date);
}

/** A date and time as the person's region writes it: in full for tooltips, "medium" for lists. */
export function formatDateTime(date, dateStyle = "full") {
  if (!valid(date)) return "";
  return new Intl.DateTimeFormat(regional, { dateStyle, timeStyle: "short" }).format(date);
}

/** "Today", "Yesterday" or the date, for the separators between days. */
export function formatDay(date, now = new Date()) {
  if (!valid(date)) return "";
  const startOfDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((startOfDay(now) - startOfDay(date)) / 86_400_000);
  if (days === 0) return t("day.today");
  if (days === 1) return t("day.yesterday");
  const options = { weekday: "long", day: "numeric", month: "long" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return new Intl.DateTimeFormat(regional, options).format(date);
}

/**
 * Names as a sentence lists them ("ECHO and Calculator", "ECHO e Calculator"), each a node
 * (a <bdi>): the nodes themselves, with the language's words between them.
 */
export function formatListParts(nodes) {
  const format = new Intl.ListFormat(current, { style: "long", type: "conjunction" });
  let next = 0;
  return format
    .formatToParts(nodes.map((node) => node.textContent))
    .map((part) => (part.type === "element" ? nodes[next++] : part.value));
}

/**
 * A number for people: "4,000" ("4.000" in Portuguese), grouped as the person's region
 * groups numbers, as dates are written ("12,34,567" in an Indian English browser).
 */
export function formatNumber(value) {
  return new Intl.NumberFormat(regional).format(value);
}

/**
 * A byte count for people: "1.5 MB" (decimal units, as file managers show them), with up
 * to `digits` decimals.
 */
const SIZE_UNITS = ["byte", "kilobyte", "megabyte", "gigabyte"];

/** The unit a byte count reads best in: 0 bytes, 1 kB, 2 MB, 3 GB. */
function sizeUnit(bytes) {
  let index = 0;
  for (let value = bytes; value >= 1000 && index < SIZE_UNITS.length - 1; value /= 1000) {
    index += 1;
  }
  return index;
}

/** "1.5 MB": a byte count in its own unit, or in `unit` (an index of SIZE_UNITS). */
export function formatSize(bytes, digits = 1, unit = sizeUnit(bytes)) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  const value = bytes / 1000 ** unit;
  // Intl spells bytes out ("721 byte"); "B" reads better next to "kB" and "MB".
  if (unit === 0) return `${new Intl.NumberFormat(regional).format(value)} B`;
  return new Intl.NumberFormat(regional, {
    style: "unit",
    unit: SIZE_UNITS[unit],
    unitDisplay: "short",
    maximumFractionDigits: digits,
  }).format(value);
}

/**
 * Two different byte counts (a file's size and a limit) written so that they read
 * different: in one unit, the smaller one's (never "1 MB" against "1,000 kB"), with more
 * decimals when rounding makes them alike ("200.001 kB" and "200 kB"), in bytes when even
 * three do not tell them apart ("1,000,001 B").
 */
export function formatSizes(a, b) {
  const unit = sizeUnit(Math.min(a, b));
  for (const digits of [1, 2, 3]) {
    const pair = [formatSize(a, digits, unit), formatSize(b, digits, unit)];
    if (a === b || pair[0] !== pair[1]) return pair;
  }
  return [a, b].map((bytes) => `${new Intl.NumberFormat(regional).format(bytes)} B`);
}

/** "0:42" for a recording's length in seconds. */
export function formatDuration(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}
