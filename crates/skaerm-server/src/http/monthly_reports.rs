//! Monthly reports (management numbers, not the relay's RTCP reports): a month's numbers per team and legal basis, as JSON or a CSV download.
//! Scoped to the caller's municipality and team. (Until the auth work adds roles, every staff
//! member sees their own team's report; a manager role will widen this to other teams.)

use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::TeamLeadSession;
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use skaerm_auth::audit::{AuditAction, AuditEvent};
use skaerm_scheduling::MonthlyReport;
use skaerm_scheduling::reports::month_of;

/// Which report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// `YYYY-MM` (default: the current month in Copenhagen).
    month: Option<String>,
    /// A team (default and, for now, only: the caller's own team).
    team: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn bad(detail: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        detail.to_owned(),
    )
}

/// A month's report for the caller's municipality and team.
#[utoipa::path(get, path = "/api/reports/monthly", tag = "reports", params(ReportQuery),
    responses((status = 200, body = MonthlyReport, description = "JSON, or `text/csv` with `format=csv`"),
              (status = 403, description = "`forbidden_team`")))]
pub async fn monthly(
    State(state): State<AppState>,
    session: TeamLeadSession,
    Query(query): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let month = match &query.month {
        Some(text) => {
            let date = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
                .map_err(|_| bad("month must be YYYY-MM"))?;
            use chrono::Datelike;
            (date.year(), date.month())
        }
        None => month_of(Utc::now()),
    };
    let store = &state.services.store;
    let me = store.get_staff(session.staff).await?;
    let team = match (query.team, me.team) {
        (Some(asked), Some(own)) if asked != own => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ForbiddenTeam,
                "you can only see your own team's report",
            ));
        }
        (_, own) => own,
    };
    let report = store
        .monthly_report(
            session.tenant,
            month,
            team.as_deref(),
            state.services.scheduling.saved_drive_minutes,
        )
        .await?;
    // Who looked at which month's numbers (no personal data in a report, but it is audited).
    let event = AuditEvent::staff(
        session.tenant.id_into(),
        session.staff.0,
        AuditAction::ReportViewed,
    )
    .from_ip(session.client_ip)
    .detail(&format!(
        "{}-{:02} {} {}",
        month.0,
        month.1,
        team.as_deref().unwrap_or("all teams"),
        query.format.as_deref().unwrap_or("json")
    ));
    crate::audit::record_event(&state.services, event).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => csv_response(&report),
        Some(_) => Err(bad("format must be json or csv")),
    }
}

fn csv_response(report: &MonthlyReport) -> Result<Response, Problem> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header_row = [
        "month",
        "team",
        "legal_basis",
        "legal_basis_label",
        "planned",
        "completed",
        "no_show",
        "cancelled",
        "technical_failure",
        "technical_failure_rate",
        "average_duration_seconds",
        "saved_driving_minutes",
    ];
    out.write_record(header_row)?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    // Text cells a spreadsheet would run as a formula are quoted.
    let text = |v: &str| {
        if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{v}")
        } else {
            v.to_owned()
        }
    };
    for line in report.lines.iter().chain(std::iter::once(&report.total)) {
        out.write_record([
            report.month.clone(),
            text(line.team.as_deref().unwrap_or_default()),
            line.legal_basis
                .map(|b| b.code().to_owned())
                .unwrap_or_else(|| "total".to_owned()),
            line.legal_basis_label.unwrap_or_default().to_owned(),
            line.planned.to_string(),
            line.completed.to_string(),
            line.no_show.to_string(),
            line.cancelled.to_string(),
            line.technical_failure.to_string(),
            opt(line.technical_failure_rate),
            opt(line.average_duration_seconds),
            line.saved_driving_minutes.to_string(),
        ])?;
    }
    let bytes = out.into_inner().map_err(Problem::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"skaerm-{}.csv\"", report.month),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Monthly reports: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route("/api/reports/monthly", get(monthly))
}
