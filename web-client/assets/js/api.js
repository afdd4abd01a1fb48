// The HTTP API (crates/skaerm-server/HTTP_API.md). Problems (RFC 9457) become ApiError with
// the server's stable `code`.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || (status === 0 ? "network" : "http_error");
    this.body = body || {};
  }
}

// Every request carries the CSRF header the server requires on cookie-authenticated writes
// (a cross-site page cannot add it without a CORS preflight, which the server never grants).
function send(method, path, body) {
  const headers = { "x-skaerm-csrf": "1" };
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// The access cookie lives 15 minutes; on a 401 the session is refreshed once (through the
// HttpOnly refresh cookie) and the request retried — also when this tab's refresh lost a race
// with another tab's, whose new cookies the browser already holds.
let refreshing = null;
function refreshSession() {
  if (!refreshing) {
    refreshing = send("POST", "/api/session/refresh")
      .then((r) => r.ok)
      .catch(() => false)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function request(method, path, body) {
  let response;
  try {
    response = await send(method, path, body);
    const mayRefresh = !path.startsWith("/api/session") && !path.startsWith("/api/join/");
    if (response.status === 401 && mayRefresh) {
      await refreshSession();
      response = await send(method, path, body);
    }
  } catch {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const api = {
  login: (username, password) => request("POST", "/api/session", { username, password }),
  logout: () => request("DELETE", "/api/session"),
  me: () => request("GET", "/api/me"),
  visitsToday: () => request("GET", "/api/visits"),
  visitsOn: (day) => request("GET", `/api/visits?day=${encodeURIComponent(day)}`),
  visit: (id) => request("GET", `/api/visits/${encodeURIComponent(id)}`),
  startVisit: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/start`, {}),
  mediaToken: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/media-token`, {}),
  endVisit: (id, outcome = {}) => request("POST", `/api/visits/${encodeURIComponent(id)}/end`, outcome),
  citizenLink: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/citizen-link`, {}),
  inviteGuest: (id, displayName, kind) =>
    request("POST", `/api/visits/${encodeURIComponent(id)}/guest-links`, { display_name: displayName, kind }),
  joinWithLink: (secret) => request("POST", `/api/join/${encodeURIComponent(secret)}`, {}),
  opsCalls: () => request("GET", "/api/ops/calls"),
  /** Visits planned to start in [from, to) (Date or ISO), one page of up to 500. */
  visitsBetween: (from, to, offset = 0) => request("GET",
    `/api/visits?from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}&limit=500&offset=${offset}`),
  createVisit: (body) => request("POST", "/api/visits", body),
  moveVisit: (id, body) => request("POST", `/api/visits/${encodeURIComponent(id)}/move`, body),
  cancelVisit: (id, note) => request("POST", `/api/visits/${encodeURIComponent(id)}/cancel`, note ? { note } : {}),
  createSeries: (body) => request("POST", "/api/series", body),
  series: (id) => request("GET", `/api/series/${encodeURIComponent(id)}`),
  editSeries: (id, body) => request("POST", `/api/series/${encodeURIComponent(id)}/edit`, body),
  seriesCitizenLink: (id) => request("POST", `/api/series/${encodeURIComponent(id)}/citizen-link`, {}),
  /** The month's report (`YYYY-MM`) for the caller's team. */
  monthlyReport: (month) => request("GET", `/api/reports/monthly?month=${encodeURIComponent(month)}`),
  issueCalendarFeed: () => request("POST", "/api/calendar-feed", {}),
  revokeCalendarFeed: () => request("DELETE", "/api/calendar-feed"),
  devices: () => request("GET", "/api/devices"),
  pairDevice: (code, citizenId, label) => request("POST", "/api/devices/pair", { code, citizen_id: citizenId, label }),
  unpairDevice: (id) => request("DELETE", `/api/devices/${encodeURIComponent(id)}`),
  callDevice: (id, visitId) => request("POST", `/api/devices/${encodeURIComponent(id)}/call`, { visit_id: visitId }),
  reportCsvUrl: (month) => `/api/reports/monthly?month=${encodeURIComponent(month)}&format=csv`,
};
