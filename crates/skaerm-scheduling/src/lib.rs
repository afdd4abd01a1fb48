//! Scheduling: municipal video visits delivered under Serviceloven/Sundhedsloven — who they are
//! between, when, under which paragraph, where in their life they are — and their storage.
//!
//! - [`ids`]: typed identifiers;
//! - [`model`]: tenants, staff, citizens, visits, legal bases;
//! - [`lifecycle`]: the visit state machine as a pure function;
//! - [`conflicts`]: the double-booking rule and the scheduling settings;
//! - [`recurrence`]: RFC 5545 recurrence in Europe/Copenhagen;
//! - [`reports`]: monthly numbers per team and paragraph;
//! - [`link_window`]: when a citizen's link works;
//! - [`care_record`]: the JSON and FHIR R4 record of an ended visit;
//! - [`calendar`]: Copenhagen days in UTC;
//! - [`store`]: SQLite/PostgreSQL storage.

pub mod calendar;
pub mod care_record;
pub mod conflicts;
pub mod ids;
pub mod lifecycle;
pub mod link_window;
pub mod model;
pub mod recurrence;
pub mod reports;
pub mod store;

pub use calendar::{copenhagen_day_bounds, today_and_ahead};
pub use care_record::CareRecord;
pub use conflicts::SchedulingRules;
pub use ids::{CitizenId, GuestLinkId, OutboxId, SeriesId, StaffId, TenantId, VisitId};
pub use lifecycle::{IllegalTransition, Outcome, VisitEvent, VisitStatus};
pub use link_window::{LinkWindow, LinkWindowError};
pub use model::{Citizen, EndedBy, LegalBasis, NewVisit, Staff, TIME_ZONE, Tenant, Visit};
pub use recurrence::{Recurrence, RecurrenceError};
pub use reports::{MonthlyReport, ReportLine};
pub use store::guest_links::{GuestKind, GuestLink, NewGuestLink};
pub use store::outbox::{OutboxKind, OutboxMessage};
pub use store::retention::RetentionAction;
pub use store::series::{NewSeries, Series, SeriesEdit};
pub use store::visits::{VisitPage, VisitQuery};
pub use store::{Backend, Conflict, Store, StoreError};
