"""The page in another language, and with the keyboard alone."""

from __future__ import annotations

import re

import pytest

from e2e.browser import expect, one_text_a_minute
from e2e.test_chat import PRESELECT, someone_joins
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_language_follows_the_browser_and_is_switchable(make_settings, open_tab) -> None:
    """A Brazilian browser gets Portuguese; the switch changes it and is remembered."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="pt-BR")
        page = tab.page
        await page.goto("/")
        await expect(page.get_by_role("heading", name="Nova conversa")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "pt-BR")

        await page.get_by_label("Idioma").select_option("en")
        await expect(page.get_by_role("heading", name="New conversation")).to_be_visible()
        await page.reload()
        await expect(page.get_by_role("heading", name="New conversation")).to_be_visible()


UNCLIPPED = """select => {
  // The width the select takes with room for its longest option, against the one it has.
  const free = select.cloneNode(true);
  free.style.maxWidth = "none";
  free.style.width = "auto";
  select.after(free);
  const needed = free.getBoundingClientRect().width;
  free.remove();
  return select.getBoundingClientRect().width >= needed - 0.5;
}"""
"""A page script: whether a select is wide enough to show its options whole."""


async def test_the_language_picker_is_whole_on_a_phone(make_settings, open_tab) -> None:
    """On a 375 px wide phone in Portuguese, the picker shows "Português" whole, in the
    lobby and in a conversation's header."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(
            server.base_url, locale="pt-BR", viewport={"width": 375, "height": 667}
        )
        page = tab.page
        await page.goto("/")
        picker = page.get_by_label("Idioma")
        await expect(picker).to_have_value("pt-BR")
        assert await picker.evaluate(UNCLIPPED)
        await page.fill("#nickname", "alice")
        await page.get_by_role("button", name="Começar a conversa").click()
        await page.locator("#composer-input").wait_for()
        assert await picker.evaluate(UNCLIPPED)
        await expect(page.locator(".topbar .title")).to_be_visible()


WHOLE = "el => el.scrollWidth <= el.clientWidth"
"""A page script: whether an element shows its text whole (no ellipsis, nothing cut)."""

INSIDE = """() => [...document.querySelectorAll(".topbar > *")].every((el) => {
  const box = el.getBoundingClientRect();
  return box.left >= 0 && box.right <= document.documentElement.clientWidth;
})"""
"""A page script: whether everything in the header is within the page's width."""


async def test_the_header_fits_a_320_px_phone(make_settings, open_tab) -> None:
    """At 320 px (a small phone, or 400 % zoom) in Portuguese, the conversation's name is
    shown whole beside the back button, the picker shows "Português" whole, the buttons
    are all there, and nothing is wider than the page."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(
            server.base_url, locale="pt-BR", viewport={"width": 320, "height": 640}
        )
        page = tab.page
        await page.goto("/")
        await page.fill("#nickname", "alice")
        await page.fill("#conversation-name", "Clube do livro")
        await page.get_by_role("button", name="Começar a conversa").click()
        await page.locator("#composer-input").wait_for()
        title = page.locator(".topbar .title")
        await expect(title).to_have_text("Clube do livro")
        assert await title.evaluate(WHOLE)
        assert await page.get_by_label("Idioma").evaluate(UNCLIPPED)
        for button in ("button.back", "button.save", "button.people-toggle"):
            await expect(page.locator(button)).to_be_in_viewport(ratio=1)
        assert await page.evaluate(INSIDE)
        assert await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )


async def test_landmarks_headings_and_names(make_settings, open_tab) -> None:
    """The lobby has a level-one heading; a conversation has a main landmark, named by its
    title, with the participants panel beside it, not in it; the participants button's
    name starts with the count it shows (a name holds what its label shows), in each
    language."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await page.goto("/")
        await expect(page.get_by_role("heading", level=1)).to_have_accessible_name("Tertulia")
        await expect(page.get_by_role("main")).to_have_count(1)

        await tab.start_conversation("alice", ["ECHO"], name="Book club")
        main = page.get_by_role("main")
        await expect(main).to_have_count(1)
        await expect(main).to_have_accessible_name("Book club")
        await expect(main.locator("#composer-input")).to_have_count(1)
        await expect(page.get_by_role("complementary")).to_have_count(1)
        await expect(main.get_by_role("complementary")).to_have_count(0)

        toggle = page.locator("button.people-toggle")
        await expect(toggle).to_have_text("2")
        await expect(toggle).to_have_accessible_name("2 participants: show or hide")
        await someone_joins(tab, server.base_url, open_tab)
        await expect(toggle).to_have_text("3")
        await expect(toggle).to_have_accessible_name("3 participants: show or hide")
        await page.get_by_label("Language").select_option("pt-BR")
        await expect(toggle).to_have_accessible_name("3 participantes: mostrar ou esconder")
        await expect(toggle).to_have_attribute("title", "Mostrar ou esconder os participantes")


async def test_reply_with_the_keyboard_alone(make_settings, open_tab) -> None:
    """Enter sends; from the box, Shift+Tab reaches the newest message, R replies to it."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await page.goto("/")
        await page.keyboard.type("alice")  # the name field has the focus
        await page.keyboard.press("Enter")  # ECHO is ticked by default
        await expect(page.locator("#composer-input")).to_be_focused()
        await page.keyboard.type("ping")
        await page.keyboard.press("Enter")
        await expect(tab.bubble("PING")).to_have_count(1)

        # Shift+Tab goes back (past the box's attach button) to the newest row itself.
        newest = tab.bubble("PING")
        for _ in range(6):
            await page.keyboard.press("Shift+Tab")
            if await newest.evaluate("row => row === document.activeElement"):
                break
        await expect(newest).to_be_focused()
        await page.keyboard.press("ArrowUp")
        await expect(tab.bubble("ping")).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("r")

        await expect(page.locator(".reply-preview")).to_contain_text("Replying to ECHO")
        await expect(page.locator("#composer-input")).to_be_focused()
        await page.keyboard.type("pong")
        await page.keyboard.press("Enter")
        mine = tab.bubble("pong", mine=True)
        await expect(mine.locator(".quote")).to_contain_text("PING")
        await mine.locator(".quote").click()
        await expect(newest).to_be_focused()


async def test_a_prompt_says_it_offers_options(make_settings, open_tab) -> None:
    """A message offering options is announced with their number, and the list's help
    (its description) says that Tab reaches a message's buttons."""
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        prompts = tab.bubble("Choose a bot:", mine=False)
        await expect(prompts).to_have_count(1)
        described = page.locator("#messages-help")
        await expect(page.locator("ol.messages")).to_have_attribute(
            "aria-describedby", "messages-help"
        )
        await expect(described).to_contain_text("Tab reaches the buttons of the message in focus")
        await tab.send("which?")  # (anything but a bot's name: the prompt again)
        await expect(prompts).to_have_count(2)
        await expect(page.locator("#announcer")).to_contain_text("Choose a bot:, 1 option")

        await page.get_by_label("Language").select_option("pt-BR")
        await expect(described).to_contain_text("Tab chega aos botões da mensagem em foco")


async def test_a_bots_options_are_reached_with_the_keyboard(make_settings, open_tab) -> None:
    """Shift+Tab from the box comes back to the newest row itself (not to its last button);
    Tab from there reaches its option; from the option, arrows, Home and End move between
    rows as from a row, and R replies."""
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        prompts = tab.bubble("Choose a bot:", mine=False)
        await expect(prompts).to_have_count(1)
        await tab.send("which?")  # (the prompt again, quoting it: the newest row)
        await expect(prompts).to_have_count(2)

        prompt = prompts.last
        await expect(page.locator("#composer-input")).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(page.locator("button.attach")).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(prompt).to_be_focused()
        option = prompt.get_by_role("button", name="ECHO")
        await page.keyboard.press("Tab")  # (the quote of my text)
        await page.keyboard.press("Tab")
        await expect(option).to_be_focused()

        await page.keyboard.press("ArrowUp")
        await expect(tab.bubble("which?", mine=True)).to_be_focused()
        await expect(option).to_have_attribute("tabindex", "-1")  # (its row is left)
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await expect(option).to_be_focused()
        await page.keyboard.press("Home")
        await expect(page.locator("li.row").first).to_be_focused()
        await page.keyboard.press("End")
        await expect(prompt).to_be_focused()
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await expect(option).to_be_focused()
        await page.keyboard.press("r")
        await expect(page.locator(".reply-preview")).to_contain_text("Replying to Manager")
        await expect(page.locator("#composer-input")).to_be_focused()


RING = """() => {
  // What the element in focus shows of it: an outline painted (style, width, a colour
  // that is not transparent) or a box-shadow.
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const alpha = /rgba\\(.*,\\s*([\\d.]+)\\)$/.exec(style.outlineColor)?.[1];
  const outline =
    style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 1 && alpha !== "0";
  return { what: el.outerHTML.slice(0, 80), outline, shadow: style.boxShadow !== "none" };
}"""
"""A page script: how the element in focus shows that it is."""

EDGE = """el => {
  const style = getComputedStyle(el);
  return { style: style.borderTopStyle, color: style.borderTopColor };
}"""
"""A page script: an element's (top) border."""


async def test_the_focus_shows_in_forced_colors(make_settings, open_tab) -> None:
    """In forced colours (Windows high contrast) box-shadows are not painted: whatever has
    the keyboard's focus, a message row among them (Shift+Tab from the box to the list,
    then ArrowUp), shows an outline. Nor are backgrounds: my bubbles show their edge."""
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url, forced_colors="active")
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        await expect(tab.bubble("Choose a bot:")).to_have_count(1)
        await tab.send("ping")
        await expect(tab.bubble("Choose a bot:")).to_have_count(2)

        rows = page.locator("li.row:focus")
        for _ in range(6):
            await page.keyboard.press("Shift+Tab")
            if await rows.count():
                break
        await page.keyboard.press("ArrowUp")
        await expect(rows).to_have_count(1)
        ring = await page.evaluate(RING)
        assert ring["outline"], ring
        assert not ring["shadow"]  # (forced colours drop it: the outline is all there is)
        # (and their backgrounds: a bubble of mine, without one, shows its edge)
        edge = await tab.bubble("ping", mine=True).locator(".bubble").evaluate(EDGE)
        assert edge["style"] == "solid"
        assert edge["color"] != "rgba(0, 0, 0, 0)"
        await page.keyboard.press("ArrowDown")  # (the prompt: its options in the walk below)

        # Everything the Tab key reaches, from the top of the page to its end.
        await page.locator("a.skip-link").focus()
        reached, unseen = [], []
        for _ in range(30):
            if await page.evaluate("document.activeElement === document.body"):
                break
            ring = await page.evaluate(RING)
            reached.append(ring["what"])
            if not ring["outline"]:
                unseen.append(ring["what"])
            await page.keyboard.press("Tab")
        assert any('class="option"' in what for what in reached), reached
        assert not unseen


CONTRAST = """() => {
  // WCAG's contrast of what the page paints: an element's colour, faded by its opacity and
  // its ancestors', on the backgrounds under it, translucent ones laid over what they cover.
  const rgba = (color) => {
    const [r, g, b, a = 1] = (color.match(/[\\d.]+/g) ?? []).map(Number);
    return [r, g, b, a];
  };
  const over = ([r, g, b, a], under) => [r, g, b].map((v, i) => v * a + under[i] * (1 - a));
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const layer = rgba(getComputedStyle(node).backgroundColor);
      if (layer[3] > 0) layers.push(layer);
      if (layer[3] >= 1) break;
    }
    const page = rgba(getComputedStyle(document.body).backgroundColor);
    return layers.reverse().reduce((under, layer) => over(layer, under), page.slice(0, 3));
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (el) => {
    const under = background(el);
    const [r, g, b, a] = rgba(getComputedStyle(el).color);
    let alpha = a;
    for (let node = el; node; node = node.parentElement)
      alpha *= Number(getComputedStyle(node).opacity);
    const [l1, l2] = [luminance(over([r, g, b, alpha], under)), luminance(under)];
    return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  };
  const low = [];
  const check = (el, what) => {
    const ratio = contrast(el);
    if (ratio < 4.5) low.push(`${what}: ${ratio.toFixed(2)}`);
  };
  const texts = ".system-line span, .system-line time, .meta, .quote-name, .quote-text, .text";
  // The message box's placeholder, on the box.
  const box = document.querySelector("#composer-input");
  const hint = rgba(getComputedStyle(box, "::placeholder").color);
  const [l1, l2] = [luminance(hint.slice(0, 3)), luminance(background(box))];
  const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  if (ratio < 4.5) low.push(`placeholder: ${ratio.toFixed(2)}`);
  for (const el of document.querySelectorAll(`.messages :is(${texts})`))
    check(el, `${el.closest(".row").className} ${el.className || el.tagName}`);
  // A participant's colour is a hue of the id's: every hue, on the page's own rules.
  const initials = document.querySelector(".avatar:not(.avatar-bot)");
  for (const el of [document.querySelector(".sender"), initials]) {
    for (let hue = 0; hue < 360; hue += 1) {
      el.style.setProperty("--avatar-hue", String(hue));
      check(el, `${el.className} at hue ${hue}`);
    }
  }
  return low;
}"""
"""A page script: the texts of the conversation under WCAG AA's 4.5:1, and why."""


async def test_the_conversation_has_enough_contrast(make_settings, open_tab) -> None:
    """Every text of a conversation (events and their times, names in every participant
    colour, initials on avatars of every colour, my bubbles' times and quotes, the message
    box's placeholder) stands at 4.5:1 at least against what is under it, in the light
    theme and the dark one."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        await someone_joins(tab, server.base_url, open_tab)
        await tab.send("hello")
        answer = tab.bubble("HELLO", mine=False)
        await expect(answer).to_have_count(1)
        await answer.hover()
        await answer.locator("button.reply").click()
        await tab.send("a reply")  # (my bubble with a quote in it)
        await expect(tab.bubble("A REPLY", mine=False)).to_have_count(1)
        await expect(page.locator(".system-line")).to_have_count(3)

        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            assert await page.evaluate(CONTRAST) == [], scheme


async def test_a_throttled_message_is_explained_in_the_persons_language(
    make_settings, open_tab
) -> None:
    """Over the message rate limit the server refuses a text with an error frame in
    English; the page says why in the person's language, and again after a switch."""
    async with one_text_a_minute(make_settings, open_tab) as tab:
        page = tab.page
        await tab.send("second")

        failed = page.locator("li.pending.status-failed", has_text="second")
        await expect(failed).to_contain_text("You are sending messages too fast.")
        await expect(page.locator(".notice-error")).to_contain_text("too fast")
        await page.get_by_label("Language").select_option("pt-BR")
        await expect(failed).to_contain_text("Você está enviando mensagens rápido demais.")


async def test_the_servers_own_words_say_they_are_english(make_settings, open_tab) -> None:
    """In Portuguese, what the page shows in the server's own words (English) is marked
    lang="en", for a screen reader to read it as English: a refusal under the lobby's
    form, a refused text's reason and its notice. What the page says itself is not."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="pt-BR")
        page = tab.page
        await page.goto("/")
        await page.locator("input[name=bot]").first.wait_for()
        start = page.get_by_role("button", name="Começar a conversa")
        await page.fill("#nickname", "al\u202eice")  # (a bidirectional override: a 400)
        await start.click()
        error = page.locator(".form-error")
        await expect(error).to_contain_text("nickname")
        await expect(error).to_have_attribute("lang", "en")
        await page.fill("#nickname", "")
        await start.click()
        await expect(error).to_have_text("Digite o seu nome.")
        await expect(error).not_to_have_attribute("lang", "en")

        await page.fill("#nickname", "alice")
        await start.click()
        await page.locator("#composer-input").wait_for()
        await tab.send("null \x00 here")  # (refused by the server, in its words)
        refusal = "Null characters are not allowed."
        reason = page.locator("li.pending.status-failed .failure > span")
        await expect(reason).to_contain_text(refusal)
        await expect(reason).to_have_attribute("lang", "en")
        notice = page.locator(".notice-error .notice-text")
        await expect(notice).to_contain_text(refusal)
        await expect(notice).to_have_attribute("lang", "en")
        await expect(page.locator("li.pending.status-failed .status-text")).to_have_text(
            "Não enviada"
        )
        await expect(page.locator("li.pending [lang]")).to_have_count(1)


async def test_a_burst_over_the_limit_waits_and_goes(make_settings, open_tab) -> None:
    """Over a per-second limit (texts written during an outage go at once when it ends)
    the refused texts wait the second the server names and go again by themselves, in
    order: none is left "Not sent", and no refusal is shown."""
    async with live_server(make_settings(rate_limits={"message": "3/second"})) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", [])
        texts = [f"burst {i}" for i in range(8)]
        for text in texts:
            await tab.send(text)
        for text in texts:
            await expect(tab.bubble(text, mine=True)).to_have_count(1, timeout=15_000)
        await expect(page.locator("li.pending")).to_have_count(0)
        assert await page.locator("li.msg.mine .text").all_inner_texts() == texts
        await expect(page.locator(".notice-error")).to_have_count(0)


CATALOGS = """async () => {
  const { LANGUAGES } = await import("/static/js/i18n.js");
  const catalogs = {};
  for (const { code } of LANGUAGES)
    catalogs[code] = (await import(`/static/i18n/${code}.js`)).default;
  return catalogs;
}"""
PLURAL = re.compile(r"\.(zero|one|two|few|many|other)$")


async def test_every_language_has_every_text(make_settings, open_tab) -> None:
    """Each language of the picker has a text for every key of English's, and none else,
    with the same placeholders (plural forms may differ by language, not their keys)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.page.goto("/")
        catalogs = await tab.page.evaluate(CATALOGS)

    def shape(catalog: dict[str, str]) -> dict[str, set[str]]:
        placeholders: dict[str, set[str]] = {}
        for key, text in catalog.items():
            placeholders.setdefault(PLURAL.sub("", key), set()).update(
                re.findall(r"\{(\w+)\}", text)
            )
        return placeholders

    english = shape(catalogs.pop("en"))
    assert catalogs, "no language besides English"
    for code, catalog in catalogs.items():
        assert shape(catalog) == english, code


IN_PANEL = "() => Boolean(document.activeElement?.closest('#participants'))"
UNDER_PANEL = """() => {
  const el = document.activeElement;
  const outside = el && el !== document.body && !el.closest('#participants');
  return outside ? el.outerHTML.slice(0, 120) : null;
}"""
"""The focused element when it is neither in the panel nor nowhere (the browser's own UI)."""


async def test_the_narrow_panel_keeps_the_keyboard_until_it_closes(make_settings, open_tab) -> None:
    """On a phone the participants panel covers the conversation: Tab stays in it (what it
    covers is inert), its heading shows the focus ring, and Escape closes it wherever the
    focus is, giving the focus back to the button that opened it; a tap beside it too."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport={"width": 360, "height": 740})
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        toggle = page.locator("button.people-toggle")
        await expect(page.locator("#participants")).to_be_hidden()

        await toggle.focus()
        await page.keyboard.press("Enter")
        heading = page.locator("#participants h2")
        await expect(heading).to_be_focused()
        assert await heading.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
        for part in ("header.topbar", ".timeline", "a.skip-link"):
            await expect(page.locator(part)).to_have_js_property("inert", True)
        visited = set()
        for _ in range(6):
            await page.keyboard.press("Tab")
            assert await page.evaluate(UNDER_PANEL) is None
            visited.add(await page.evaluate("document.activeElement.className"))
        assert "icon-button panel-close" in visited

        # Escape with the focus outside the panel (a click on its empty part drops it).
        box = await page.locator("#participants").bounding_box()
        await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 20)
        assert not await page.evaluate(IN_PANEL)
        await page.keyboard.press("Escape")
        await expect(page.locator("#participants")).to_be_hidden()
        await expect(toggle).to_be_focused()
        await expect(page.locator(".timeline")).to_have_js_property("inert", False)

        # A tap beside the open panel closes it, and nothing under the tap is activated.
        await toggle.click()
        await expect(heading).to_be_focused()
        await page.mouse.click(10, 400)
        await expect(page.locator("#participants")).to_be_hidden()
        await expect(toggle).to_be_focused()
        await page.keyboard.press("Tab")
        assert not await page.evaluate(IN_PANEL)


async def test_the_participants_panel_reads_a_bot_in_one_piece(make_settings, open_tab) -> None:
    """A bot in the panel is read as "ECHO, a bot": not "ECHO bot , a bot", its visible
    badge and then a hidden text read apart from its name."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        people = page.locator("#participants ul.people")
        await expect(people).to_match_aria_snapshot(
            "- list:\n  - listitem: alice (you) online\n  - listitem: ECHO, a bot"
        )
        await page.get_by_label("Language").select_option("pt-BR")
        await expect(people.get_by_role("listitem").last).to_match_aria_snapshot(
            "- listitem: ECHO, um bot"
        )


async def test_the_participants_panel_follows_the_width(make_settings, open_tab) -> None:
    """Open beside a wide conversation; narrowing the window closes it (it would cover the
    conversation), widening it again opens it beside."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport={"width": 1280, "height": 760})
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        panel = page.locator("#participants")
        await expect(panel).to_be_visible()

        await page.set_viewport_size({"width": 360, "height": 740})
        await expect(panel).to_be_hidden()
        await expect(page.locator("button.people-toggle")).to_have_attribute(
            "aria-expanded", "false"
        )
        await expect(page.locator(".timeline")).to_have_js_property("inert", False)
        await page.fill("#composer-input", "still reachable")

        await page.set_viewport_size({"width": 1280, "height": 760})
        await expect(panel).to_be_visible()
        await expect(page.locator(".timeline")).to_have_js_property("inert", False)


async def test_a_language_switch_says_everything_on_screen_again(make_settings, open_tab) -> None:
    """What the page built with words (an error under the lobby's form, the reply being
    written, the files to send with their sizes, an error about one, the count of new
    messages) is said again in the language chosen, sizes formatted for it."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport={"width": 1100, "height": 520})
        page = tab.page
        await page.goto("/")
        await page.locator("input[name=bot]").first.wait_for()
        await page.get_by_role("button", name="Start the conversation").click()
        await expect(page.locator(".form-error")).to_have_text("Please enter your name.")
        await page.get_by_label("Language").select_option("pt-BR")
        await expect(page.locator(".form-error")).to_have_text("Digite o seu nome.")
        await page.get_by_label("Idioma").select_option("en")

        await tab.start_conversation("alice", [])
        bob, url = await someone_joins(tab, server.base_url, open_tab)

        async def bob_says(text: str) -> None:
            data = {"type": "T", "text": text, "local_id": text}
            assert (await bob.context.request.post(f"{url}/messages/", data=data)).ok

        for n in range(12):
            await bob_says(f"filler {n}")
        await expect(tab.bubble("filler 11")).to_have_count(1)
        await page.evaluate(
            "async () => { document.querySelector('.scroller').scrollTop = 0;"
            " await new Promise(requestAnimationFrame); }"
        )
        for n in range(3):
            await bob_says(f"news {n}")
        jump = page.locator(".jump-new")
        await expect(jump).to_have_text("3 new messages")

        first = tab.bubble("filler 0")
        await first.hover()
        await first.locator("button.reply").click()
        files = [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x" * 2400},
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
        ]
        await page.set_input_files("input[type=file]", files=files)
        preview, staged = page.locator(".reply-preview"), page.locator("ul.staged")
        error = page.locator(".composer-error")
        await expect(preview).to_contain_text("Replying to bob")
        await expect(staged).to_have_attribute("aria-label", "Files to send")
        await expect(staged).to_contain_text("2.4 kB")
        await expect(error).to_have_text("empty.txt is empty.")

        await page.get_by_label("Language").select_option("pt-BR")
        await expect(preview).to_contain_text("Respondendo a bob")
        await expect(preview.get_by_role("button", name="Cancelar a resposta")).to_be_visible()
        await expect(staged).to_have_attribute("aria-label", "Arquivos a enviar")
        await expect(staged).to_contain_text("2,4 kB")
        await expect(staged.get_by_role("button", name="Remover notes.txt")).to_be_visible()
        await expect(error).to_have_text("empty.txt está vazio.")
        await expect(jump).to_have_text("3 mensagens novas")


HIT = """buttons => buttons.map(button => {
  const box = button.getBoundingClientRect();
  const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return button.contains(top);
})"""
"""For each button, whether a click at its centre would reach it (nothing lies over it)."""


async def test_texts_refused_in_a_row_share_one_notice_clear_of_their_buttons(
    make_settings, open_tab
) -> None:
    """Texts refused as too fast one after another: one notice says it (one alert for a
    screen reader, not one per text), and it covers none of their Try again and Delete."""
    async with one_text_a_minute(make_settings, open_tab) as tab:
        page = tab.page
        for text in ("second", "third", "fourth"):
            await tab.send(text)
        failed = page.locator("li.pending.status-failed")
        await expect(failed).to_have_count(3)
        await expect(page.locator(".notice")).to_have_count(1)
        await expect(page.locator(".notice-error")).to_contain_text("too fast")
        await expect(page.locator("[role=alert]:not(:empty)")).to_have_count(1)
        buttons = failed.locator(".failure button")
        await expect(buttons).to_have_count(6)
        assert await buttons.evaluate_all(HIT) == [True] * 6


async def test_the_lobby_says_the_server_is_unavailable_in_the_persons_language(
    make_settings, open_tab
) -> None:
    """A conversation refused with 503 (the server's database out of reach) is told in the
    page's language, not in the server's English words."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="pt-BR")
        page = tab.page

        async def database_away(route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            body = {
                "detail": "The database cannot be reached; try again shortly.",
                "code": "unavailable",
            }
            await route.fulfill(status=503, json=body, headers={"Retry-After": "5"})

        await page.route("**/api/chat/conversations/", database_away)
        await page.goto("/")
        await page.fill("#nickname", "alice")
        await page.get_by_role("button", name="Começar a conversa").click()
        error = page.get_by_text("O servidor está indisponível agora.")
        await expect(error).to_be_visible()
        await expect(page.get_by_text("The database cannot be reached")).to_have_count(0)
