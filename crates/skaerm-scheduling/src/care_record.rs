//! The record of a delivered (or failed) visit for the municipality's care record (EOJ): a
//! plain JSON document and the same as a FHIR R4 `Encounter` (virtual class, the paragraph as
//! service type, staff as participants, the citizen by pseudonymous identifier). Built purely
//! from a closed visit; the id is stable so receivers can de-duplicate.

use crate::ids::{CitizenId, SeriesId, StaffId, TenantId, VisitId};
use crate::lifecycle::{Outcome, VisitStatus};
use crate::model::{EndedBy, LegalBasis, Visit};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// Identifier systems used in the FHIR resource.
pub const VISIT_SYSTEM: &str = "urn:skaerm:visit";
/// Staff identifiers.
pub const STAFF_SYSTEM: &str = "urn:skaerm:staff";
/// Citizen (pseudonymous) identifiers.
pub const CITIZEN_SYSTEM: &str = "urn:skaerm:citizen";
/// Legal-basis codes.
pub const LEGAL_BASIS_SYSTEM: &str = "urn:skaerm:legal-basis";
/// Outcome codes.
pub const OUTCOME_SYSTEM: &str = "urn:skaerm:visit-outcome";

/// What is published when a visit ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CareRecord {
    /// Stable id of this record (the same on every delivery attempt).
    pub record_id: String,
    /// The visit.
    pub visit_id: VisitId,
    /// Municipality.
    pub tenant_id: TenantId,
    /// Paragraph.
    pub legal_basis: LegalBasis,
    /// Its Danish label.
    pub legal_basis_label: &'static str,
    /// Purpose text.
    pub purpose: String,
    /// Staff member who owned it.
    pub staff_id: StaffId,
    /// Their team.
    pub staff_team: Option<String>,
    /// Co-host.
    pub co_host_id: Option<StaffId>,
    /// Citizen (pseudonymous id).
    pub citizen_id: CitizenId,
    /// Series, when an occurrence.
    pub series_id: Option<SeriesId>,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned end.
    pub planned_end: DateTime<Utc>,
    /// Actual start.
    pub actual_start: Option<DateTime<Utc>>,
    /// Actual end.
    pub actual_end: Option<DateTime<Utc>>,
    /// Actual length in seconds.
    pub duration_seconds: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Who ended it.
    pub ended_by: Option<EndedBy>,
    /// Note given with the outcome.
    pub note: Option<String>,
}

impl CareRecord {
    /// The record of an ended visit (`None` for a visit that has not ended with an outcome).
    pub fn of(visit: &Visit, staff_team: Option<&str>) -> Option<CareRecord> {
        let outcome = match visit.status {
            VisitStatus::Completed => Outcome::Completed,
            VisitStatus::NoShow => Outcome::NoShow,
            VisitStatus::TechnicalFailure => Outcome::TechnicalFailure,
            _ => return None,
        };
        Some(CareRecord {
            record_id: format!("visit-{}", visit.id),
            visit_id: visit.id,
            tenant_id: visit.tenant_id,
            legal_basis: visit.legal_basis,
            legal_basis_label: visit.legal_basis.label_da(),
            purpose: visit.purpose.clone(),
            staff_id: visit.staff_id,
            staff_team: staff_team.map(str::to_owned),
            co_host_id: visit.co_host_id,
            citizen_id: visit.citizen_id,
            series_id: visit.series_id,
            planned_start: visit.planned_start,
            planned_end: visit.planned_end(),
            actual_start: visit.actual_start,
            actual_end: visit.actual_end,
            duration_seconds: visit.actual_duration().map(|d| d.num_seconds()),
            outcome,
            ended_by: visit.ended_by,
            note: visit.outcome_note.clone(),
        })
    }

    /// The record as a FHIR R4 `Encounter`.
    pub fn fhir_encounter(&self) -> Value {
        let status = match self.outcome {
            Outcome::Completed => "finished",
            Outcome::NoShow => "cancelled",
            Outcome::TechnicalFailure if self.actual_start.is_some() => "finished",
            Outcome::TechnicalFailure => "cancelled",
        };
        let outcome_code = match self.outcome {
            Outcome::Completed => "completed",
            Outcome::NoShow => "no_show",
            Outcome::TechnicalFailure => "technical_failure",
        };
        let mut participants = vec![json!({
            "type": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "PPRF", "display": "primary performer"}]}],
            "individual": {"identifier": {"system": STAFF_SYSTEM, "value": self.staff_id.to_string()}}
        })];
        if let Some(co_host) = self.co_host_id {
            participants.push(json!({
                "type": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "SPRF", "display": "secondary performer"}]}],
                "individual": {"identifier": {"system": STAFF_SYSTEM, "value": co_host.to_string()}}
            }));
        }
        let mut period = serde_json::Map::new();
        if let Some(start) = self.actual_start {
            period.insert("start".into(), json!(start.to_rfc3339()));
        }
        if let Some(end) = self.actual_end {
            period.insert("end".into(), json!(end.to_rfc3339()));
        }
        let mut encounter = json!({
            "resourceType": "Encounter",
            "id": self.visit_id.to_string(),
            "identifier": [{"system": VISIT_SYSTEM, "value": self.visit_id.to_string()}],
            "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "VR", "display": "virtual"},
            "serviceType": {"coding": [{"system": LEGAL_BASIS_SYSTEM,
                "code": self.legal_basis.code(), "display": self.legal_basis_label}]},
            "subject": {"identifier": {"system": CITIZEN_SYSTEM, "value": self.citizen_id.to_string()}},
            "participant": participants,
            "period": period,
            "extension": [{"url": OUTCOME_SYSTEM, "valueCode": outcome_code}],
        });
        if let Some(seconds) = self.duration_seconds {
            encounter["length"] = json!({"value": (seconds as f64 / 60.0 * 100.0).round() / 100.0,
                "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"});
        }
        if !self.purpose.is_empty() {
            encounter["reasonCode"] = json!([{"text": self.purpose}]);
        }
        encounter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn ended(status: VisitStatus) -> Visit {
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        Visit {
            id: VisitId::new(),
            tenant_id: TenantId::new(),
            legal_basis: LegalBasis::Sel83a,
            purpose: "Medicin".into(),
            staff_id: StaffId::new(),
            co_host_id: Some(StaffId::new()),
            citizen_id: CitizenId::new(),
            planned_start: start,
            duration_minutes: 15,
            status,
            actual_start: Some(start + Duration::minutes(1)),
            actual_end: Some(start + Duration::minutes(5)),
            ended_by: Some(EndedBy::System),
            outcome_note: None,
            series_id: None,
            occurrence_start: None,
            is_exception: false,
        }
    }

    #[test]
    fn a_completed_visit_becomes_a_finished_virtual_encounter() {
        let visit = ended(VisitStatus::Completed);
        let record = CareRecord::of(&visit, Some("Nord")).unwrap();
        assert_eq!(record.duration_seconds, Some(240));
        assert_eq!(record.record_id, format!("visit-{}", visit.id));
        let fhir = record.fhir_encounter();
        assert_eq!(fhir["resourceType"], "Encounter");
        assert_eq!(fhir["status"], "finished");
        assert_eq!(fhir["class"]["code"], "VR");
        assert_eq!(fhir["serviceType"]["coding"][0]["code"], "sel_83a");
        assert_eq!(
            fhir["subject"]["identifier"]["value"],
            visit.citizen_id.to_string()
        );
        assert_eq!(fhir["participant"].as_array().unwrap().len(), 2);
        assert_eq!(fhir["period"]["start"], "2026-11-23T09:01:00+00:00");
        assert_eq!(fhir["length"]["value"], 4.0);
    }

    #[test]
    fn only_ended_visits_have_a_record() {
        assert!(CareRecord::of(&ended(VisitStatus::InProgress), None).is_none());
        assert!(CareRecord::of(&ended(VisitStatus::Cancelled), None).is_none());
        let no_show = CareRecord::of(&ended(VisitStatus::NoShow), None).unwrap();
        assert_eq!(no_show.fhir_encounter()["status"], "cancelled");
    }
}
