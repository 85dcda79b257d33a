//! GraphQL shapes of notifications.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use subgraph_kit::cost::list_size;
use subgraph_kit::federation::{PaymentRef, ProductRef};

use crate::domain::{
    Channel, NewNotification, Notification, NotificationPatch, NotificationType as DomainType,
    Priority, Stats, Status,
};
use crate::service::{NotificationPage, Notifications};

subgraph_kit::mirror_enum! {
    /// What a notification is about.
    NotificationType <=> DomainType {
        PaymentCompleted, PaymentFailed, PaymentRefunded, PaymentCancelled, PaymentExpired,
        BasketAbandoned, StockLow, StockOut, Promotion, System,
    }
}

subgraph_kit::mirror_enum! {
    /// How a notification reaches its user.
    NotificationChannel <=> Channel { InApp, Email, Sms, Push }
}

subgraph_kit::mirror_enum! {
    /// Where a notification is in its life.
    NotificationStatus <=> Status { Pending, Sent, Failed, Read }
}

subgraph_kit::mirror_enum! {
    /// How prominently to show a notification.
    NotificationPriority <=> Priority { Low, Normal, High, Urgent }
}

/// A message for one user.
pub struct NotificationNode(pub Notification);

impl NotificationNode {
    /// An id the notification's data names under `key`.
    fn data_id(&self, key: &str) -> Option<&str> {
        self.0.data.as_ref()?.get(key)?.as_str()
    }
}

#[Object(name = "Notification")]
impl NotificationNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.0.kind.into()
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn message(&self) -> &str {
        &self.0.message
    }

    /// Structured details (ids of the payment, product...).
    async fn data(&self) -> Option<Json<serde_json::Value>> {
        self.0.data.clone().map(Json)
    }

    /// The payment this notification is about, if any.
    async fn payment(&self) -> Option<PaymentRef> {
        self.data_id("paymentId").map(PaymentRef::new)
    }

    /// The product this notification is about, if any.
    async fn product(&self) -> Option<ProductRef> {
        self.data_id("productId").map(ProductRef::new)
    }

    async fn channel(&self) -> NotificationChannel {
        self.0.channel.into()
    }

    async fn status(&self) -> NotificationStatus {
        self.0.status.into()
    }

    async fn priority(&self) -> NotificationPriority {
        self.0.priority.into()
    }

    /// Delivery retries so far.
    async fn retry_count(&self) -> i32 {
        self.0.retry_count
    }

    /// Why the last delivery failed.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    /// The recipient.
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.clone())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn scheduled_at(&self) -> Option<DateTime<Utc>> {
        self.0.scheduled_at
    }

    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }

    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }

    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

/// A notification to create (admin).
#[derive(InputObject)]
pub struct CreateNotificationInput {
    /// The recipient's user id.
    pub user_id: ID,
    #[graphql(name = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub message: String,
    pub data: Option<Json<serde_json::Value>>,
    /// `IN_APP` when omitted.
    pub channel: Option<NotificationChannel>,
    /// `NORMAL` when omitted.
    pub priority: Option<NotificationPriority>,
    /// `NOTIFICATION_TTL` from now when omitted.
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateNotificationInput {
    /// The domain input, scheduled for `at` if given.
    pub fn into_new(self, at: Option<DateTime<Utc>>) -> NewNotification {
        NewNotification {
            user_id: self.user_id.0,
            kind: self.kind.into(),
            title: self.title,
            message: self.message,
            data: self.data.map(|Json(d)| d),
            channel: self.channel.map_or(Channel::InApp, Into::into),
            priority: self.priority.map_or(Priority::Normal, Into::into),
            scheduled_at: at,
            expires_at: self.expires_at,
        }
    }
}

/// Changes to a notification's content (admin); `data: null` clears it.
#[derive(InputObject)]
pub struct UpdateNotificationInput {
    pub title: Option<String>,
    pub message: Option<String>,
    pub data: MaybeUndefined<Json<serde_json::Value>>,
    pub priority: Option<NotificationPriority>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<UpdateNotificationInput> for NotificationPatch {
    fn from(input: UpdateNotificationInput) -> Self {
        Self {
            title: input.title,
            message: input.message,
            data: match input.data {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(Json(d)) => Some(Some(d)),
            },
            priority: input.priority.map(Into::into),
            expires_at: input.expires_at,
        }
    }
}

/// A count of notifications in one status.
#[derive(SimpleObject)]
pub struct StatusCount {
    pub status: NotificationStatus,
    pub count: i64,
}

/// A count of notifications of one type.
#[derive(SimpleObject)]
pub struct TypeCount {
    #[graphql(name = "type")]
    pub kind: NotificationType,
    pub count: i64,
}

/// The number of values of a GraphQL enum: the length of a list with one
/// entry per value (`byStatus`), its `@listSize`.
fn variants<E: async_graphql::resolver_utils::EnumType>() -> Option<i32> {
    i32::try_from(E::items().len()).ok()
}

/// The caller's notifications, counted.
#[derive(SimpleObject)]
pub struct NotificationStats {
    pub total: i64,
    /// Delivered and not read.
    pub unread: i64,
    /// Every status, zeros included.
    #[graphql(directive = list_size::apply(variants::<NotificationStatus>(), None, None, None))]
    pub by_status: Vec<StatusCount>,
    /// Every type that occurs.
    #[graphql(directive = list_size::apply(variants::<NotificationType>(), None, None, None))]
    pub by_type: Vec<TypeCount>,
}

impl From<Stats> for NotificationStats {
    fn from(stats: Stats) -> Self {
        Self {
            total: stats.total,
            unread: stats.unread,
            by_status: stats
                .by_status
                .into_iter()
                .map(|(status, count)| StatusCount {
                    status: status.into(),
                    count,
                })
                .collect(),
            by_type: stats
                .by_type
                .into_iter()
                .map(|(kind, count)| TypeCount {
                    kind: kind.into(),
                    count,
                })
                .collect(),
        }
    }
}

/// A page of notifications, newest first.
pub type NotificationConnection = Connection<String, NotificationNode>;

/// Turns a page into the GraphQL connection.
pub fn connection(page: NotificationPage, after_given: bool) -> NotificationConnection {
    let mut connection = Connection::new(after_given, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, n)| Edge::new(cursor, NotificationNode(n))),
    );
    connection
}

/// The notification use cases from the schema data.
pub fn notifications<'a>(ctx: &Context<'a>) -> &'a Notifications {
    ctx.data_unchecked::<Notifications>()
}
