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
  visit: (id) => request("GET", `/api/visits/${encodeURIComponent(id)}`),
  startVisit: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/start`, {}),
  mediaToken: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/media-token`, {}),
  endVisit: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/end`, {}),
  citizenLink: (id) => request("POST", `/api/visits/${encodeURIComponent(id)}/citizen-link`, {}),
  inviteGuest: (id, displayName, kind) =>
    request("POST", `/api/visits/${encodeURIComponent(id)}/guest-links`, { display_name: displayName, kind }),
  joinWithLink: (secret) => request("POST", `/api/join/${encodeURIComponent(secret)}`, {}),
};
