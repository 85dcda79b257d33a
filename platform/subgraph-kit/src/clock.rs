//! The one clock every store writes with.

use chrono::{DateTime, Utc};

/// The current time at the stores' precision (microseconds): PostgreSQL
/// and MySQL `datetime(6)` keep microseconds, so a value read back compares
/// equal to the one written, which keyset cursors rely on.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
