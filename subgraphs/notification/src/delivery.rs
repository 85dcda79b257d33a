//! The delivery adapter.
//!
//! In-app notifications are delivered by being stored: the inbox and (in
//! the events issue) live subscriptions show them. E-mail, SMS and push go
//! to a delivery gateway: a JSON POST to `NOTIFICATION_WEBHOOK_URL`, where
//! the shop's mail/SMS/push provider integration listens. Without a gateway
//! those channels fail (and are retried), never silently dropped.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use crate::domain::{Channel, Deliverer, DeliveryError, Notification};

/// Delivers in-app directly and other channels through the gateway.
pub struct GatewayDeliverer {
    gateway: Option<(String, reqwest::Client)>,
}

impl GatewayDeliverer {
    /// A deliverer posting to `webhook_url` (if any), giving up after `timeout`.
    pub fn new(webhook_url: Option<String>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            gateway: webhook_url.map(|url| (url, client)),
        }
    }
}

impl Deliverer for GatewayDeliverer {
    fn deliver<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            if notification.channel == Channel::InApp {
                return Ok(());
            }
            let Some((url, client)) = &self.gateway else {
                return Err(DeliveryError(format!(
                    "no delivery gateway for {} (set NOTIFICATION_WEBHOOK_URL)",
                    notification.channel
                )));
            };
            let body = json!({
                "id": notification.id,
                "userId": notification.user_id,
                "channel": notification.channel.as_str(),
                "type": notification.kind.as_str(),
                "priority": notification.priority.as_str(),
                "title": notification.title,
                "message": notification.message,
                "data": notification.data,
            });
            let response = client
                .post(url)
                .header("idempotency-key", notification.id.to_string())
                .json(&body)
                .send()
                .await
                .map_err(|err| DeliveryError(format!("gateway unreachable: {err}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(DeliveryError(format!(
                    "gateway answered HTTP {}",
                    response.status()
                )))
            }
        })
    }
}
