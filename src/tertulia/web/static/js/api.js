/**
 * The REST API under /api/chat/ (PROTOCOL 3), same-origin, authenticated by the
 * HttpOnly `sessionid` cookie that the browser sends by itself.
 */

const BASE = "/api/chat";

/** A failed request: `status` is the HTTP status, or 0 when the server was not reached. */
export class ApiError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function conversationPath(id) {
  return `${BASE}/conversations/${encodeURIComponent(id)}`;
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, null);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Names of the bots a conversation may invite. */
export async function listBots() {
  const data = await request("GET", `${BASE}/bots/`);
  return Array.isArray(data?.results) ? data.results.filter((b) => typeof b === "string") : [];
}

/** The five upload limits in bytes (0: that kind of file is disabled). */
export function getLimits() {
  return request("GET", `${BASE}/limits/`);
}

/** The caller's own conversations, newest first (`?mine=true`, a Tertulia extension). */
export async function listMine() {
  const data = await request("GET", `${BASE}/conversations/?mine=true`);
  return data?.results ?? [];
}

let roomsOn; // the API root's `rooms`, read once (undefined: not known yet)

/**
 * Whether the server lists rooms, from its API root (a Tertulia extension; undefined from a
 * server that does not say, which the listing's 403 then tells): asking first keeps a
 * refused request, and the browser's console line for it, out of every visit.
 */
async function listsRooms() {
  if (roomsOn === undefined) {
    try {
      const root = await request("GET", `${BASE}/`);
      if (typeof root?.rooms === "boolean") roomsOn = root.rooms;
    } catch {
      // (asked again next time; the listing itself says)
    }
  }
  return roomsOn;
}

/** Open conversations (rooms), or null when the server has rooms off. */
export async function listRooms() {
  if ((await listsRooms()) === false) return null;
  const rooms = [];
  // A few pages at most: the lobby is for picking a room, not browsing an archive.
  for (let page = 1; page <= 5; page += 1) {
    let data;
    try {
      data = await request("GET", `${BASE}/conversations/?page=${page}`);
    } catch (error) {
      if (error.status === 403) return null;
      throw error;
    }
    rooms.push(...(data?.results ?? []));
    if (!data?.next) break;
  }
  return rooms;
}

export function createConversation({ nickname, name, bots }) {
  return request("POST", `${BASE}/conversations/`, { nickname, name, bots });
}

/** Join a room, or re-enter one this browser is already in (nickname "" keeps the name). */
export function joinConversation(id, nickname) {
  return request("POST", `${conversationPath(id)}/join/`, { nickname });
}

export function getConversation(id) {
  return request("GET", `${conversationPath(id)}/`);
}

/** One page of history: {count, next, previous, results}. */
export function getMessages(id, params) {
  const query = new URLSearchParams(params);
  return request("GET", `${conversationPath(id)}/messages/?${query}`);
}

/**
 * Upload one file message as multipart (PROTOCOL 3.10), reporting progress.
 *
 * XMLHttpRequest rather than fetch: only it reports upload progress. The promise never
 * rejects; it resolves to `{status, body}` with status 0 when the server could not be
 * reached and -1 when aborted.
 *
 * @returns {{promise: Promise<{status: number, body: any}>, abort: () => void}}
 */
export function uploadMessage(id, fields, file, fileName, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve) => {
    const form = new FormData();
    // The fields go before the file, so a server could refuse early without the body.
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined && value !== null) form.append(key, value);
    }
    form.append("file", file, fileName);
    xhr.open("POST", `${conversationPath(id)}/messages/`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON (a proxy's error page): the status says enough.
      }
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
    xhr.addEventListener("timeout", () => resolve({ status: 0, body: null }));
    xhr.addEventListener("abort", () => resolve({ status: -1, body: null }));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/**
 * The language of the server's own words (an error's detail): where the page shows them, in
 * any language, their element says so (`lang`), so that a screen reader reads them as such.
 */
export const SERVER_LANGUAGE = "en";

/** One line of text out of an error body or error frame detail (string, list or object). */
export function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map(detailText).filter(Boolean).join(" ");
  if (typeof detail === "object") {
    if (typeof detail.detail === "string") return detail.detail;
    return Object.entries(detail)
      .filter(([key]) => key !== "code")
      .map(([key, value]) => {
        const text = detailText(value);
        return key === "non_field_errors" || key === "detail" || !text ? text : `${key}: ${text}`;
      })
      .filter(Boolean)
      .join(" ");
  }
  return String(detail);
}
