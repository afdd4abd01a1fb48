//! `GET /api/admin/audit`: the municipality's audit log for administrators, as JSON or CSV.
//! The export itself is audited.

use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::AdminSession;
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::audit::{AuditAction, AuditRecord, MAX_EXPORT};

/// Query of an export.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// Start (inclusive); default seven days ago.
    from: Option<DateTime<Utc>>,
    /// End (exclusive); default now.
    to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// Most events (default and cap 10 000).
    limit: Option<u32>,
}

/// `GET /api/admin/audit?from=…&to=…&format=json|csv&limit=…`.
pub async fn export(
    State(state): State<AppState>,
    admin: AdminSession,
    Query(query): Query<ExportQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let to = query.to.unwrap_or(now + Duration::seconds(1));
    let from = query.from.unwrap_or(to - Duration::days(7));
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadFormat,
                "format must be json or csv",
            ));
        }
    };
    let events = state
        .services
        .audit
        .list(
            admin.tenant.id_into(),
            from,
            to,
            query.limit.unwrap_or(MAX_EXPORT),
        )
        .await?;
    crate::audit::record(
        &state.services,
        &admin.actor(),
        AuditAction::AuditExported,
        None,
    )
    .await?;
    if csv {
        let mut response = to_csv(&events).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"skaerm-audit.csv\""),
        );
        Ok(response)
    } else {
        Ok(Json(json!({"from": from, "to": to, "events": events})).into_response())
    }
}

/// RFC 4180 CSV; cells that a spreadsheet would run as a formula are prefixed with `'`.
fn to_csv(events: &[AuditRecord]) -> String {
    let mut out = String::from(
        "id,at,tenant_id,actor_kind,actor_id,action,subject_kind,subject_id,source_ip,detail\r\n",
    );
    for e in events {
        let cells = [
            e.id.to_string(),
            e.at.to_rfc3339(),
            e.tenant_id.to_string(),
            e.actor_kind.code().to_owned(),
            e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
            e.action.code().to_owned(),
            e.subject_kind
                .map(|k| k.code().to_owned())
                .unwrap_or_default(),
            e.subject_id.map(|id| id.to_string()).unwrap_or_default(),
            e.source_ip.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// The audit log export: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route("/api/admin/audit", get(export))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
