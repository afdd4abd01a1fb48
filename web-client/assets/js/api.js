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

async function request(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
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
  joinWithLink: (secret) => request("POST", `/api/join/${encodeURIComponent(secret)}`, {}),
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
  reportCsvUrl: (month) => `/api/reports/monthly?month=${encodeURIComponent(month)}&format=csv`,
};
