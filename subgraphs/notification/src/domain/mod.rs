//! Notifications and their rules, free of HTTP, GraphQL and SQL.
//!
//! A notification is created PENDING, delivered through its channel (in-app
//! delivery is storing it; other channels go through the [`Deliverer`]
//! port), becomes SENT or FAILED, and READ when its user opens it. Failed
//! ones are retried up to `DEFAULT_RETRY_ATTEMPTS`; every notification
//! expires and is cleaned up after `NOTIFICATION_TTL`.

mod error;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

pub use subgraph_kit::clock::now;

pub use error::NotificationError;

/// Declares a closed set of names stored as SCREAMING_SNAKE strings.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Parses the stored form.
            pub fn parse(value: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum! {
    /// What a notification is about.
    NotificationType {
        /// A payment was captured.
        PaymentCompleted => "PAYMENT_COMPLETED",
        /// A payment failed.
        PaymentFailed => "PAYMENT_FAILED",
        /// A payment was (partly) refunded.
        PaymentRefunded => "PAYMENT_REFUNDED",
        /// A payment was cancelled.
        PaymentCancelled => "PAYMENT_CANCELLED",
        /// A payment expired unpaid.
        PaymentExpired => "PAYMENT_EXPIRED",
        /// A basket was left with items in it.
        BasketAbandoned => "BASKET_ABANDONED",
        /// A product's stock fell below the threshold.
        StockLow => "STOCK_LOW",
        /// A product sold out.
        StockOut => "STOCK_OUT",
        /// A marketing message.
        Promotion => "PROMOTION",
        /// Anything else the shop wants to say.
        System => "SYSTEM",
    }
}

stored_enum! {
    /// How a notification reaches its user.
    Channel {
        /// In the shop's own UI (and live over subscriptions).
        InApp => "IN_APP",
        /// E-mail, through the delivery gateway.
        Email => "EMAIL",
        /// Text message, through the delivery gateway.
        Sms => "SMS",
        /// Mobile push, through the delivery gateway.
        Push => "PUSH",
    }
}

stored_enum! {
    /// Where a notification is in its life.
    Status {
        /// Created or scheduled, not delivered yet.
        Pending => "PENDING",
        /// Delivered.
        Sent => "SENT",
        /// Delivery failed (see `retry_count`).
        Failed => "FAILED",
        /// Opened by its user.
        Read => "READ",
    }
}

stored_enum! {
    /// How prominently to show a notification.
    Priority {
        /// Informational.
        Low => "LOW",
        /// The default.
        Normal => "NORMAL",
        /// Worth interrupting for.
        High => "HIGH",
        /// Act now.
        Urgent => "URGENT",
    }
}

/// A notification as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Stable id (UUID v7: ids sort by creation).
    pub id: Uuid,
    /// The recipient.
    pub user_id: String,
    /// What it is about.
    pub kind: NotificationType,
    /// Headline.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Structured details (ids of the payment, product...).
    pub data: Option<serde_json::Value>,
    /// How it is delivered.
    pub channel: Channel,
    /// Where it is in its life.
    pub status: Status,
    /// How prominent it is.
    pub priority: Priority,
    /// Delivery retries so far.
    pub retry_count: i32,
    /// Why the last delivery failed.
    pub failure_reason: Option<String>,
    /// Deliver no earlier than this.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
    /// When its user read it.
    pub read_at: Option<DateTime<Utc>>,
    /// When it is cleaned up.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its place among its user's announced notifications (1, 2, 3, … in
    /// commit order); `None` while a scheduled one waits for delivery.
    /// `notificationAdded(after:)` resumes by it, since ids are taken
    /// before commit and so do not follow commit order.
    pub seq: Option<i64>,
}

/// Fields of a notification to create, as an adapter received them.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The recipient.
    pub user_id: String,
    /// What it is about.
    pub kind: NotificationType,
    /// Headline, 1 to 200 characters.
    pub title: String,
    /// Body, 1 to 5000 characters.
    pub message: String,
    /// Structured details, at most 16 KiB of JSON.
    pub data: Option<serde_json::Value>,
    /// How it is delivered.
    pub channel: Channel,
    /// How prominent it is.
    pub priority: Priority,
    /// Deliver no earlier than this (a scheduled notification).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it is cleaned up; `NOTIFICATION_TTL` from now when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewNotification {
    /// Checks every field; `now` judges times in the past.
    pub fn validate(mut self, now: DateTime<Utc>) -> Result<Self, NotificationError> {
        self.user_id = required("userId", &self.user_id, 200)?;
        self.title = required("title", &self.title, 200)?;
        self.message = required("message", &self.message, 5000)?;
        validate_data(self.data.as_ref())?;
        if self.scheduled_at.is_some_and(|at| at <= now) {
            return Err(NotificationError::invalid("at", "must be in the future"));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(NotificationError::invalid(
                "expiresAt",
                "must be in the future",
            ));
        }
        Ok(self)
    }
}

/// Changes to a notification's content; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NotificationPatch {
    /// New headline.
    pub title: Option<String>,
    /// New body.
    pub message: Option<String>,
    /// New details, or `Some(None)` to clear them.
    pub data: Option<Option<serde_json::Value>>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NotificationPatch {
    /// Checks every field that is present.
    pub fn validate(mut self, now: DateTime<Utc>) -> Result<Self, NotificationError> {
        self.title = self.title.map(|t| required("title", &t, 200)).transpose()?;
        self.message = self
            .message
            .map(|m| required("message", &m, 5000))
            .transpose()?;
        if let Some(Some(data)) = &self.data {
            validate_data(Some(data))?;
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(NotificationError::invalid(
                "expiresAt",
                "must be in the future",
            ));
        }
        Ok(self)
    }
}

/// Counts of one user's notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// All of them.
    pub total: i64,
    /// Delivered and not read.
    pub unread: i64,
    /// Per status.
    pub by_status: Vec<(Status, i64)>,
    /// Per type.
    pub by_type: Vec<(NotificationType, i64)>,
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Hands notifications to the outside world (e-mail, SMS, push gateways).
pub trait Deliverer: Send + Sync + 'static {
    /// Delivers `notification` through its channel.
    fn deliver<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

fn required(field: &'static str, value: &str, max: usize) -> Result<String, NotificationError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(NotificationError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(NotificationError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn validate_data(data: Option<&serde_json::Value>) -> Result<(), NotificationError> {
    if data.is_some_and(|d| d.to_string().len() > 16 * 1024) {
        return Err(NotificationError::invalid(
            "data",
            "must be at most 16 KiB of JSON",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> NewNotification {
        NewNotification {
            user_id: "u1".into(),
            kind: NotificationType::System,
            title: " Hello ".into(),
            message: "Body".into(),
            data: None,
            channel: Channel::InApp,
            priority: Priority::Normal,
            scheduled_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn stored_forms_round_trip() {
        for kind in NotificationType::ALL {
            assert_eq!(NotificationType::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(Status::parse("READ"), Some(Status::Read));
        assert_eq!(Channel::parse("FAX"), None);
    }

    #[test]
    fn validation_names_fields() {
        let now = now();
        assert_eq!(new().validate(now).unwrap().title, "Hello");
        let field = |n: NewNotification| match n.validate(now) {
            Err(NotificationError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(
            field(NewNotification {
                title: "".into(),
                ..new()
            }),
            "title"
        );
        assert_eq!(
            field(NewNotification {
                user_id: " ".into(),
                ..new()
            }),
            "userId"
        );
        assert_eq!(
            field(NewNotification {
                scheduled_at: Some(now),
                ..new()
            }),
            "at"
        );
        let big = serde_json::json!({ "blob": "x".repeat(17 * 1024) });
        assert_eq!(
            field(NewNotification {
                data: Some(big),
                ..new()
            }),
            "data"
        );
    }
}
