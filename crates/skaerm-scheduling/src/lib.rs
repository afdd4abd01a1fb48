//! Scheduling: municipal video visits delivered under Serviceloven §85/§83/§83a — who they are
//! between, when, under which paragraph, where in their life they are — and their storage.
//!
//! - [`ids`]: typed identifiers;
//! - [`model`]: tenants, staff, citizens, visits, legal bases;
//! - [`lifecycle`]: the visit state machine as a pure function;
//! - [`link_window`]: when a citizen's link works;
//! - [`calendar`]: Copenhagen days in UTC;
//! - [`store`]: SQLite/PostgreSQL storage.

pub mod calendar;
pub mod ids;
pub mod lifecycle;
pub mod link_window;
pub mod model;
pub mod store;

pub use calendar::copenhagen_day_bounds;
pub use ids::{CitizenId, StaffId, TenantId, VisitId};
pub use lifecycle::{IllegalTransition, VisitEvent, VisitStatus};
pub use link_window::{LinkWindow, LinkWindowError};
pub use model::{Citizen, LegalBasis, NewVisit, Staff, Tenant, Visit};
pub use store::{Backend, Store, StoreError};
