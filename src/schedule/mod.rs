//! Schedule: which run to poll now. Each watched run's memory and lifecycle decisions
//! (`watched`: when to ask its status, how long to wait, when to retire it), the due queue that
//! polls the earliest-due run first, and the export capacity a poll may fill (`due`).

pub mod due;
pub mod watched;

pub use due::{poll_capacity, DueQueue, Reservations};
