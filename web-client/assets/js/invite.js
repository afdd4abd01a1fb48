// The staff call page's "invite a participant" control: a name and a kind (relative,
// interpreter, colleague) become a one-off link to this visit (POST /api/visits/{id}/guest-links),
// shown once with a copy button. Texts from the catalogues; names only ever as textContent.
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";

export class InviteForm {
  /**
   * @param {HTMLElement} root  the #invite element of visit.html
   * @param {string} visitId
   */
  constructor(root, visitId) {
    this.visitId = visitId;
    this.form = root.querySelector("#invite-form");
    this.name = root.querySelector("#invite-name");
    this.kind = root.querySelector("#invite-kind");
    this.submit = root.querySelector("#invite-submit");
    this.result = root.querySelector("#invite-result");
    this.url = root.querySelector("#invite-url");
    this.copy = root.querySelector("#invite-copy");
    this.message = root.querySelector("#invite-message");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.invite();
    });
    this.copy.addEventListener("click", () => this.copyLink());
  }

  async invite() {
    const name = this.name.value.trim();
    if (!name) {
      this.message.textContent = t("invite.name_missing");
      this.name.focus();
      return;
    }
    this.submit.disabled = true;
    this.message.textContent = "";
    try {
      const issued = await api.inviteGuest(this.visitId, name, this.kind.value);
      this.url.value = issued.url;
      this.result.hidden = false;
      this.message.textContent = t("invite.created", { name: issued.display_name });
      this.name.value = "";
      this.url.focus();
      this.url.select();
    } catch (e) {
      this.message.textContent = e instanceof ApiError && e.code === "invalid"
        ? t("invite.name_invalid")
        : e instanceof ApiError && e.code === "visit_closed" ? t("invite.closed") : t("error.generic");
    } finally {
      this.submit.disabled = false;
    }
  }

  async copyLink() {
    try {
      await navigator.clipboard.writeText(this.url.value);
      this.message.textContent = t("invite.copied");
    } catch {
      this.url.select();
      this.message.textContent = t("invite.copy_manually");
    }
  }
}
