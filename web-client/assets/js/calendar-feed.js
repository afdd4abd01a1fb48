// The staff member's calendar subscription (Outlook and others): make the secret feed address,
// make a new one (the old one stops working) or stop it. The address is shown once; the server
// keeps only its hash.
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);

/** Wires the calendar card on the visits page; `loggedOut` is called on a 401. */
export function wireCalendarFeed(loggedOut) {
  const issue = $("#feed-issue");
  const revoke = $("#feed-revoke");
  const out = $("#feed-out");
  issue.addEventListener("click", async () => {
    const again = issue.dataset.issued === "true";
    issue.disabled = true;
    try {
      const { url } = await api.issueCalendarFeed();
      issue.dataset.issued = "true";
      issue.dataset.i18n = "feed.reissue";
      issue.textContent = t("feed.reissue");
      revoke.hidden = false;
      const label = document.createElement("label");
      label.htmlFor = "feed-value";
      label.dataset.i18n = "feed.label";
      label.textContent = t("feed.label");
      const value = document.createElement("input");
      value.id = "feed-value";
      value.readOnly = true;
      value.value = url;
      value.className = "link-value";
      const note = document.createElement("p");
      note.className = again ? "notice-line" : "hint";
      note.dataset.i18n = again ? "feed.reissued" : "feed.how";
      note.textContent = t(note.dataset.i18n);
      out.replaceChildren(label, value, note);
      try {
        await navigator.clipboard.writeText(url);
      } catch {
        value.focus();
        value.select();
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return loggedOut();
      out.textContent = t("error.generic");
    } finally {
      issue.disabled = false;
    }
  });
  revoke.addEventListener("click", async () => {
    try {
      await api.revokeCalendarFeed();
      revoke.hidden = true;
      issue.dataset.issued = "false";
      issue.dataset.i18n = "feed.issue";
      issue.textContent = t("feed.issue");
      const note = document.createElement("p");
      note.dataset.i18n = "feed.revoked";
      note.textContent = t("feed.revoked");
      out.replaceChildren(note);
      issue.focus();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return loggedOut();
      out.textContent = t("error.generic");
    }
  });
}
