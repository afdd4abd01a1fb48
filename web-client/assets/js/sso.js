// Single sign-on buttons on the staff login page: one link per configured identity provider
// (GET /api/sso/providers). Provider names are set as text, never as HTML.
import { t, onLanguageChange } from "./i18n.js";

let providers = [];

function render() {
  const list = document.querySelector("#sso-providers");
  if (!list) return;
  list.replaceChildren(
    ...providers.map((p) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.className = "button primary";
      // Only our own relative login URLs are followed.
      link.href = `/auth/oidc/${encodeURIComponent(p.id)}/login`;
      link.textContent = t("login.sso", { name: p.display_name });
      item.append(link);
      return item;
    }),
  );
}

async function main() {
  try {
    const response = await fetch("/api/sso/providers", { credentials: "same-origin" });
    if (!response.ok) return;
    providers = (await response.json()).providers || [];
  } catch {
    providers = [];
  }
  render();
  onLanguageChange(render);
}

main();
