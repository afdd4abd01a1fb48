// On the staff call page: "Ring til borgerens tablet" when the visit's citizen has a paired
// tablet. The tablet rings for 60 s; when answered it joins as the citizen and waits in the
// waiting room like any citizen, so the staff member lets it in with "Lad komme ind".
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";

/** Fills `root` with a call button per paired tablet of `citizenId`; stays hidden without any. */
export async function wireTabletCall(root, visitId, citizenId) {
  let tablets;
  try {
    tablets = (await api.devices()).devices.filter((d) => d.citizen_id === citizenId);
  } catch {
    return;
  }
  if (tablets.length === 0) return;
  const status = document.createElement("p");
  status.setAttribute("role", "status");
  for (const tablet of tablets) {
    const ring = document.createElement("button");
    ring.type = "button";
    ring.className = "button";
    ring.textContent = t("tablet.call");
    if (tablets.length > 1 && tablet.label) ring.textContent += ` (${tablet.label})`;
    ring.addEventListener("click", async () => {
      ring.disabled = true;
      try {
        const { ringing_seconds: seconds } = await api.callDevice(tablet.id, visitId);
        status.textContent = t("tablet.ringing", { n: seconds });
      } catch (e) {
        status.textContent = t(e instanceof ApiError && e.code === "visit_not_started"
          ? "tablet.not_started" : "error.generic");
      } finally {
        ring.disabled = false;
      }
    });
    root.append(ring);
  }
  root.append(status);
  root.hidden = false;
}
