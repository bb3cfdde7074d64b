/**
 * Tertulia's web client: the entry point. It shows the lobby, or re-enters the
 * conversation the tab was in (its id is kept in sessionStorage, the tab's own, so that
 * two tabs in two conversations each reload into theirs; the participant comes back
 * through the HttpOnly session cookie), and swaps views. A new tab starts in the
 * conversation last entered in any tab (kept in localStorage), if it is still open.
 *
 * It speaks only the public protocol (PROTOCOL.md): the same REST calls and WebSocket
 * frames as every other client. No build step: plain ES modules.
 */

import { getConversation, joinConversation } from "./js/api.js";
import { ChatView } from "./js/chat-view.js";
import { backoffDelay } from "./js/connection.js";
import { h } from "./js/dom.js";
import { detectLanguage, onLanguageChange, setLanguage, t } from "./js/i18n.js";
import { LobbyView } from "./js/lobby.js";
import { setUpNotices } from "./js/notices.js";
import { ChatSession, forgetConversation } from "./js/session.js";
import { storage, tabStorage } from "./js/storage.js";

const root = document.getElementById("app");
let view = null;
let current = null; // {session, leave}: the conversation this tab is in, if any

// The browser's Back button goes from a conversation to the lobby, as the page's own back
// arrow does, and Forward into it again: a conversation is one history entry above the
// lobby's (the same address; the entry's state names it).
const IN = "tertulia.conversation";

window.addEventListener("popstate", (event) => {
  const id = event.state?.[IN];
  current?.leave(undefined, { byHistory: true });
  if (id) resume(id);
});

// A file not stored yet is not kept across a reload or a closed tab, as a text is (they
// are in localStorage; a file could be too large): the browser asks before it goes.
window.addEventListener("beforeunload", (event) => {
  if (!current?.session.holdsUnsentFiles()) return;
  event.preventDefault();
  event.returnValue = ""; // (older browsers ask only when it is set)
});

function show(next) {
  view?.destroy();
  view = next;
  root.replaceChildren(next.el);
  next.mounted?.();
}

/** The lobby; `message` is the i18n key of why we are back there (said in any language). */
function showLobby(message) {
  show(new LobbyView({ onEnter: enter, message }));
}

function enter(conversation) {
  tabStorage.set("conversation", conversation.id);
  storage.set("conversation", conversation.id);
  if (history.state?.[IN] !== conversation.id) history.pushState({ [IN]: conversation.id }, "");
  const here = { session: new ChatSession(conversation) };
  here.leave = (message, { byHistory = false } = {}) => {
    if (current !== here) return; // (left already)
    current = null;
    forget(conversation.id);
    showLobby(message);
    // Its entry goes too (Back from the lobby leaves the page); one Back took it already.
    if (!byHistory && history.state?.[IN] === conversation.id) history.back();
  };
  current = here;
  show(
    new ChatView(here.session, {
      onLeave: () => here.leave(),
      onLost: (reason) => here.leave(`lost.${reason}`),
    }),
  );
  here.session.start();
}

/**
 * This tab is back in the lobby, and stays there on a reload (an empty id, not none: a
 * tab without one is a new tab). A new tab no longer starts in that conversation either.
 */
function forget(id) {
  tabStorage.set("conversation", "");
  if (storage.get("conversation") === id) storage.remove("conversation");
}

/** A plain screen while the server cannot be reached at start-up. */
class WaitingView {
  constructor(onGiveUp) {
    this.el = h(
      "main",
      { class: "waiting-screen" },
      h(
        "p",
        { role: "status" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        t("connection.unreachable"),
      ),
      h(
        "button",
        { type: "button", class: "secondary", onclick: onGiveUp },
        t("action.back_to_lobby"),
      ),
    );
  }

  relabel() {}

  destroy() {}
}

/**
 * Whether an answer may change if asked again: no answer at all (0), a timeout, a rate
 * limit (the join limit counts per address, which people behind one NAT share), or a
 * server or proxy error (a restart). Anything else (403: not a participant, 404: no such
 * conversation) means the person is no longer in it.
 */
function passing(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/** Re-enter a conversation this browser was in, as the same participant. */
async function resume(id) {
  let cancelled = false;
  for (let attempt = 0; !cancelled; attempt += 1) {
    try {
      // Ask first: with rooms on, joining without a session would make a new, anonymous
      // participant rather than bring the old one back.
      const conversation = await getConversation(id);
      if (!conversation.my_participant_id) {
        leaveResume(id, "lost.left");
        return;
      }
      enter(await joinConversation(id, ""));
      return;
    } catch (error) {
      if (!passing(error.status)) {
        if (error.status === 404) forgetConversation(id); // (its pending texts, its draft)
        leaveResume(id, error.status === 404 ? "lost.gone" : "lost.left");
        return;
      }
      if (!(view instanceof WaitingView)) {
        show(
          new WaitingView(() => {
            cancelled = true;
            leaveResume(id);
          }),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
    }
  }
}

function leaveResume(id, message) {
  forget(id);
  showLobby(message);
  if (history.state?.[IN]) history.replaceState(null, ""); // (the lobby's entry now)
}

setUpNotices();
setLanguage(detectLanguage());
onLanguageChange(() => view?.relabel?.());
// The tab's own conversation ("" in the lobby); a new tab's: the last one entered.
const saved = tabStorage.get("conversation") ?? storage.get("conversation");
if (saved) resume(saved);
else showLobby();
