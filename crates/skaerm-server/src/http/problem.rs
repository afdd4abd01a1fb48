//! Errors as RFC 9457 `application/problem+json`, with a stable machine-readable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use skaerm_auth::accounts::AccountError;
use skaerm_scheduling::StoreError;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// The stable machine-readable `code` of a problem: a contract with the web client and
        /// the tests (listed in HTTP_API.md, "Error codes").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as sent (`snake_case`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// Wrong username or password.
    BadCredentials => "bad_credentials",
    /// An export format other than `json` or `csv`.
    BadFormat => "bad_format",
    /// A body that is not JSON for the endpoint (or too large), or query parameters that do not fit together.
    BadRequest => "bad_request",
    /// The visit changed at the same time; try again.
    Busy => "busy",
    /// The staff member is already booked (`conflicting_visit` names the visit).
    Conflict => "conflict",
    /// An API write without the CSRF header or from a foreign origin.
    Csrf => "csrf",
    /// The username is taken.
    Duplicate => "duplicate",
    /// The caller lacks the role the endpoint needs.
    ForbiddenRole => "forbidden_role",
    /// The caller may not see that team.
    ForbiddenTeam => "forbidden_team",
    /// The visit cannot do that in its state (`status` names it).
    IllegalTransition => "illegal_transition",
    /// Something went wrong on the server (the cause is logged, not shown).
    Internal => "internal",
    /// A value breaks a rule (the detail says which).
    Invalid => "invalid",
    /// The recurrence rule cannot be used.
    InvalidRrule => "invalid_rrule",
    /// The visit is over.
    LinkExpired => "link_expired",
    /// The account has no role in Skærm, belongs to another municipality or was removed.
    NoRole => "no_role",
    /// No such resource (or not in the caller's municipality).
    NotFound => "not_found",
    /// Only the visit's own staff member may do that.
    NotOwner => "not_owner",
    /// The tablet has not been paired yet.
    NotPaired => "not_paired",
    /// Only staff responsible for the citizen may do that.
    NotResponsible => "not_responsible",
    /// The link opens later (`opens_at`).
    NotYetOpen => "not_yet_open",
    /// An administrator tried to give herself a care role.
    SelfGrantRefused => "self_grant_refused",
    /// Too many attempts; wait `Retry-After` seconds.
    RateLimited => "rate_limited",
    /// The series was already split before that occurrence; edit the newer series.
    SeriesSplit => "series_split",
    /// The identity provider did not log the person in, or its answer was refused (`reason`).
    SsoRefused => "sso_refused",
    /// The single sign-on was not started here or has expired.
    SsoState => "sso_state",
    /// The identity provider could not be reached.
    SsoUnavailable => "sso_unavailable",
    /// Log in first.
    /// A recurrence rule that makes more than 4 visits a day.
    TooManyPerDay => "too_many_per_day",
    Unauthenticated => "unauthenticated",
    /// No tablet is waiting with this pairing code.
    UnknownCode => "unknown_code",
    /// No such link.
    UnknownLink => "unknown_link",
    /// The visit has ended.
    VisitClosed => "visit_closed",
    /// The visit has begun or ended and can no longer be changed (`status`).
    VisitNotChangeable => "visit_not_changeable",
    /// The visit can be started from 15 minutes before its planned start.
    VisitNotReady => "visit_not_ready",
    /// Start the visit first.
    VisitNotStarted => "visit_not_started",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem to report to an HTTP client.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: ErrorCode,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, a stable code and a human-readable detail.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "log in first",
        )
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource",
        )
    }

    /// 500 `internal`; the cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "something went wrong on the server",
        )
    }

    /// 429 `rate_limited`.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many attempts; wait and try again",
        )
        .retry_after(retry_after_seconds.max(1))
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// A storage failure: the rule it broke (404, 409, 422), or 500 for anything else.
impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Problem::not_found(),
            StoreError::Invalid(detail) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::Invalid, detail)
            }
            StoreError::Recurrence(err @ skaerm_scheduling::RecurrenceError::TooManyPerDay(_)) => {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::TooManyPerDay,
                    err.to_string(),
                )
            }
            StoreError::Recurrence(err) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidRrule,
                err.to_string(),
            ),
            StoreError::Conflict(c) => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!(
                    "a staff member is already booked by visit {} ({} – {})",
                    c.visit, c.planned_start, c.planned_end
                ),
            )
            .with(
                "conflicting_visit",
                serde_json::json!({
                    "id": c.visit,
                    "planned_start": c.planned_start,
                    "planned_end": c.planned_end,
                }),
            ),
            StoreError::NotChangeable(status) => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::VisitNotChangeable,
                "the visit has begun or ended and can no longer be changed",
            )
            .with("status", status.code()),
            StoreError::IllegalTransition(t) => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::IllegalTransition,
                format!("a {} visit cannot do that", t.from.code()),
            )
            .with("status", t.from.code()),
            StoreError::Busy => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::Busy,
                "the visit changed at the same time; try again",
            ),
            StoreError::AlreadySplit => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::SeriesSplit,
                "the series has already been split before that occurrence; edit the newer series",
            ),
            err => Problem::internal(err),
        }
    }
}

/// A display name that may not be used: 422 `invalid`, saying why.
impl From<skaerm_auth::display_name::DisplayNameError> for Problem {
    fn from(err: skaerm_auth::display_name::DisplayNameError) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Invalid,
            format!("display name: {err}"),
        )
    }
}

/// An account rule broken (400, 409), or 500.
impl From<AccountError> for Problem {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(why) => {
                Problem::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, why)
            }
            AccountError::Duplicate => Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::Duplicate,
                "this username is taken",
            ),
            other => Problem::internal(other),
        }
    }
}

/// Failures of the identity services (and of writing a CSV or a header) are the server's: 500,
/// the cause logged.
macro_rules! internal_problem {
    ($($error:ty),* $(,)?) => {
        $(
            impl From<$error> for Problem {
                fn from(err: $error) -> Self {
                    Problem::internal(err)
                }
            }
        )*
    };
}

internal_problem!(
    crate::audit::AuditError,
    skaerm_auth::audit::AuditError,
    skaerm_auth::devices::DeviceError,
    skaerm_auth::identities::IdentityError,
    skaerm_auth::keys::KeyError,
    skaerm_auth::sessions::SessionError,
    skaerm_auth::tokens::TokenError,
    csv::Error,
    axum::http::header::InvalidHeaderValue,
);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://skaerm.dk/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra);
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_listed_in_http_api_md() {
        let doc = include_str!("../../HTTP_API.md");
        let table = doc
            .split("## Error codes")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("HTTP_API.md has an \"Error codes\" section");
        let missing: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|code| code.as_str())
            .filter(|code| !table.contains(&format!("| `{code}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "add these codes to the table in HTTP_API.md: {missing:?}"
        );
        let listed = table.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            listed,
            ErrorCode::ALL.len(),
            "HTTP_API.md lists codes the server does not send"
        );
    }

    #[test]
    fn codes_are_sent_as_their_snake_case_names() {
        assert_eq!(
            ErrorCode::VisitNotChangeable.as_str(),
            "visit_not_changeable"
        );
        assert_eq!(ErrorCode::InvalidRrule.to_string(), "invalid_rrule");
        let body = Problem::not_found().into_response();
        assert_eq!(body.status(), StatusCode::NOT_FOUND);
    }
}
