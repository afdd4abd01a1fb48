// Picks the language (Danish unless ?lang=en or a stored choice), translates the page, and
// offers t() for texts set from code. Every user-visible text lives in assets/i18n/*.js.
import da from "../i18n/da.js";
import en from "../i18n/en.js";

const catalogues = { da, en };
const STORAGE_KEY = "skaerm.lang";

function initialLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && catalogues[asked]) return asked;
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored && catalogues[stored]) return stored;
  } catch { /* storage may be blocked */ }
  return "da";
}

let language = initialLanguage();
const listeners = new Set();

export function lang() {
  return language;
}

/** The text for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = catalogues[language][key] ?? catalogues.da[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

/** Fills every [data-i18n] element's text and [data-i18n-label] element's aria-label. */
export function translate(root = document) {
  document.documentElement.lang = language;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
}

/** Called after every language change (pages re-render dynamic text). */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

export function setLanguage(next) {
  if (!catalogues[next]) return;
  language = next;
  try { localStorage.setItem(STORAGE_KEY, next); } catch { /* ignore */ }
  translate();
  for (const listener of listeners) listener(next);
}

/** Wires a button that switches between Danish and English. */
export function languageSwitch(button) {
  const render = () => {
    button.textContent = t("lang.switch");
    button.setAttribute("aria-label", t("lang.switch.label"));
  };
  button.addEventListener("click", () => setLanguage(language === "da" ? "en" : "da"));
  onLanguageChange(render);
  render();
}

/** A time in Copenhagen, e.g. "09.30". */
export function clock(iso) {
  return new Intl.DateTimeFormat(language === "da" ? "da-DK" : "en-GB", {
    timeZone: "Europe/Copenhagen",
    hour: "2-digit",
    minute: "2-digit",
  }).format(new Date(iso));
}
