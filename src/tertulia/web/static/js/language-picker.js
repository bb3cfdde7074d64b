/** The language switch shown in every header. */

import { h } from "./dom.js";
import { LANGUAGES, language, setLanguage, t } from "./i18n.js";

export function languagePicker() {
  const select = h(
    "select",
    {
      class: "language",
      "aria-label": t("language.label"),
      "data-i18n-aria-label": "language.label",
      onchange: () => setLanguage(select.value, { remember: true }),
    },
    LANGUAGES.map(({ code, label }) => h("option", { value: code, lang: code }, label)),
  );
  select.value = language();
  return select;
}
