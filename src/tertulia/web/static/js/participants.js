/** The participants panel: who is here, who is online, which bots are working. */

import { bdi, h, srOnly } from "./dom.js";
import { formatListParts, t, tParts } from "./i18n.js";
import { avatar } from "./message-view.js";

/** Me first, then people, then bots, each in the server's order. */
function ordered(store) {
  const all = [...store.participants.values()];
  const rank = (p) => (p.id === store.me ? 0 : p.type === "H" ? 1 : 2);
  return all
    .map((p, i) => [p, i])
    .sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1])
    .map(([p]) => p);
}

export function renderParticipants(store) {
  const people = ordered(store);
  const items = people.map((p) => {
    // Internal bots run inside the server and never have a socket: "offline" would be
    // wrong for them, so a bot only shows presence when it is connected (an external bot),
    // or, as people are, "offline" once it has left (the timeline says so).
    let online = store.online ? store.online.has(p.id) : null;
    if (p.type === "B" && online === false && !store.hasLeft(p.id)) online = null;
    const working = store.working.has(p.id);
    const name = p.name || t("someone");
    const states = [];
    if (working) states.push(t("participants.working"));
    else if (online === true) states.push(t("participants.online"));
    else if (online === false) states.push(t("participants.offline"));
    return h(
      "li",
      {
        class: [
          "person",
          online && "is-online",
          working && "is-working",
          store.hasLeft(p.id) && "has-left",
        ]
          .filter(Boolean)
          .join(" "),
        dataset: { participantId: p.id },
      },
      h(
        "span",
        { class: "avatar-wrap" },
        avatar(p),
        online === null ? null : h("span", { class: "presence", "aria-hidden": "true" }),
      ),
      h(
        "span",
        { class: "person-text" },
        h(
          "span",
          // (whole in its tooltip, where the panel cuts it short; isolated: "سارة!")
          { class: "person-name", title: name },
          // A bot's name is read with what it is in one piece: "ECHO, a bot" (its visible
          // badge is not read; text beside the name would be read as "ECHO , a bot").
          p.type === "B"
            ? [
                h("bdi", { "aria-hidden": "true" }, name),
                srOnly(`${name}, ${t("participants.is_bot")}`),
              ]
            : bdi(name),
          p.id === store.me
            ? h("span", { class: "you-tag" }, ` (${t("you").toLowerCase()})`)
            : null,
        ),
        h(
          "span",
          { class: "person-state" },
          p.type === "B"
            ? h("span", { class: "badge-bot", "aria-hidden": "true" }, t("bot.badge"))
            : null,
          working
            ? h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i"))
            : null,
          states.length ? h("span", {}, states.join(" · ")) : null,
        ),
      ),
    );
  });
  return h("ul", { class: "people", "aria-label": t("participants.title") }, items);
}

/**
 * "ECHO is working…" for the strip above the composer, as parts (tParts: each name in a
 * <bdi>), or null when nobody is.
 */
export function workingParts(store) {
  const names = [...store.working]
    .filter((id) => store.participants.has(id))
    .map((id) => bdi(store.participant(id).name || t("someone")));
  if (!names.length) return null;
  if (names.length === 1) return tParts("working.one", { name: names[0] });
  return tParts("working.many", { names: h("span", {}, formatListParts(names)) });
}
