//! The notification subgraph on PostgreSQL and SQLite: creation and
//! delivery, the inbox, read state, scheduling, retries through a real
//! webhook gateway, expiry, stats and ownership.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{As, Backend, GqlResponse, TestApp, backend_tests};

const FIELDS: &str = "id type title message data channel status priority retryCount failureReason userId createdAt scheduledAt sentAt readAt expiresAt";

fn input(user: &str, overrides: Value) -> Value {
    let mut base = json!({
        "userId": user, "type": "SYSTEM", "title": "Welcome", "message": "Hello there",
        "data": { "source": "test" }
    });
    for (key, value) in overrides.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

async fn create(app: &TestApp, input: Value) -> GqlResponse {
    app.gql(
        As::Admin,
        &format!("mutation($input: CreateNotificationInput!) {{ createNotification(input: $input) {{ {FIELDS} }} }}"),
        json!({ "input": input }),
    )
    .await
}

async fn created_id(app: &TestApp, input: Value) -> String {
    create(app, input).await.data()["createNotification"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn inbox(app: &TestApp, who: As, variables: Value) -> Value {
    app.gql(
        who,
        &format!(
            "query($first: Int, $after: String, $status: NotificationStatus, $type: NotificationType) {{
                myNotifications(first: $first, after: $after, status: $status, type: $type) {{
                    edges {{ cursor node {{ {FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
                }}
            }}"
        ),
        variables,
    )
    .await
    .data()["myNotifications"]
        .clone()
}

async fn unread(app: &TestApp, who: As) -> Value {
    app.gql(who, "{ me: _entities(representations: [{ __typename: \"User\", id: \"user-1\" }]) { ... on User { unreadNotificationCount } } }", json!({}))
        .await
        .data()["me"][0]["unreadNotificationCount"]
        .clone()
}

async fn get(app: &TestApp, who: As, id: &str) -> GqlResponse {
    app.gql(
        who,
        &format!("query($id: ID!) {{ notification(id: $id) {{ {FIELDS} }} }}"),
        json!({ "id": id }),
    )
    .await
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = get(app, As::Admin, id).await.data()["notification"]["status"].clone();
        if current == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "notification {id} never became {status} (is {current})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn in_app_notifications_are_delivered_read_and_counted(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    let created = create(&app, input("user-1", json!({ "priority": "HIGH" }))).await;
    let created = created.data()["createNotification"].clone();
    assert_eq!(created["status"], "SENT", "in-app delivery is immediate");
    assert_eq!(created["channel"], "IN_APP");
    assert_eq!(created["priority"], "HIGH");
    assert_eq!(created["data"], json!({ "source": "test" }));
    assert!(created["sentAt"].is_string() && created["expiresAt"].is_string());
    let second = created_id(&app, input("user-1", json!({ "type": "PROMOTION" }))).await;
    created_id(&app, input("user-2", json!({}))).await;

    let page = inbox(&app, As::User, json!({})).await;
    let ids: Vec<&str> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![second.as_str(), created["id"].as_str().unwrap()],
        "newest first, own only"
    );
    assert_eq!(unread(&app, As::User).await, 2);

    let id = created["id"].as_str().unwrap();
    let read = app
        .gql(
            As::User,
            "mutation($id: ID!) { markNotificationRead(id: $id) { status readAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read.data()["markNotificationRead"]["status"], "READ");
    assert!(read.data()["markNotificationRead"]["readAt"].is_string());
    assert_eq!(unread(&app, As::User).await, 1);
    let all = app
        .gql(As::User, "mutation { markAllNotificationsRead }", json!({}))
        .await;
    assert_eq!(all.data()["markAllNotificationsRead"], 1);
    assert_eq!(unread(&app, As::User).await, 0);

    let stats = app
        .gql(As::User, "{ notificationStats { total unread byStatus { status count } byType { type count } } }", json!({}))
        .await;
    let stats = &stats.data()["notificationStats"];
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["unread"], 0);
    assert!(
        stats["byStatus"]
            .as_array()
            .unwrap()
            .contains(&json!({ "status": "READ", "count": 2 }))
    );
    assert_eq!(
        stats["byType"],
        json!([{ "type": "PROMOTION", "count": 1 }, { "type": "SYSTEM", "count": 1 }])
    );
}

async fn inbox_filters_and_pages(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    for i in 0..5 {
        let kind = if i % 2 == 0 {
            "SYSTEM"
        } else {
            "PAYMENT_COMPLETED"
        };
        created_id(
            &app,
            input("user-1", json!({ "type": kind, "title": format!("n{i}") })),
        )
        .await;
    }
    let payments = inbox(&app, As::User, json!({ "type": "PAYMENT_COMPLETED" })).await;
    assert_eq!(payments["edges"].as_array().unwrap().len(), 2);
    let read = inbox(&app, As::User, json!({ "status": "READ" })).await;
    assert_eq!(read["edges"], json!([]));

    let first = inbox(&app, As::User, json!({ "first": 2 })).await;
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let second = inbox(
        &app,
        As::User,
        json!({ "first": 2, "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    let third = inbox(
        &app,
        As::User,
        json!({ "first": 2, "after": second["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(third["pageInfo"]["hasNextPage"], false);
    let titles: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| {
            p["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(titles, vec!["n4", "n3", "n2", "n1", "n0"]);
    let bad = app
        .gql(
            As::User,
            "{ myNotifications(after: \"nope\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
}

async fn bulk_creation_is_all_or_none(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    let bulk = "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id status userId } }";
    let ok = app
        .gql(As::Admin, bulk, json!({ "inputs": [input("user-1", json!({})), input("user-2", json!({})), input("user-1", json!({}))] }))
        .await;
    assert_eq!(
        ok.data()["bulkCreateNotifications"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let one_bad = app
        .gql(As::Admin, bulk, json!({ "inputs": [input("user-1", json!({ "title": "fine" })), input("user-1", json!({ "title": "" }))] }))
        .await;
    assert_eq!(one_bad.code(), "BAD_USER_INPUT");
    let too_many: Vec<Value> = (0..101).map(|_| input("user-1", json!({}))).collect();
    assert_eq!(
        app.gql(As::Admin, bulk, json!({ "inputs": too_many }))
            .await
            .code(),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.gql(
            As::User,
            bulk,
            json!({ "inputs": [input("user-1", json!({}))] })
        )
        .await
        .code(),
        "FORBIDDEN"
    );
    let mine = inbox(&app, As::User, json!({ "first": 100 })).await;
    assert_eq!(
        mine["edges"].as_array().unwrap().len(),
        2,
        "the refused batch stored nothing"
    );
}

async fn scheduled_notifications_arrive_when_due(backend: Backend) {
    let app =
        TestApp::spawn_notification(backend, &[("NOTIFICATION_SCHEDULER_INTERVAL", "100ms")]).await;
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(600)).to_rfc3339();
    let scheduled = app
        .gql(
            As::Admin,
            "mutation($input: CreateNotificationInput!, $at: DateTime!) { scheduleNotification(input: $input, at: $at) { id status scheduledAt } }",
            json!({ "input": input("user-1", json!({})), "at": at }),
        )
        .await;
    let id = scheduled.data()["scheduleNotification"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        scheduled.data()["scheduleNotification"]["status"],
        "PENDING"
    );
    assert_eq!(
        inbox(&app, As::User, json!({})).await["edges"],
        json!([]),
        "not visible before it is due"
    );
    wait_for_status(&app, &id, "SENT").await;
    assert_eq!(
        inbox(&app, As::User, json!({})).await["edges"][0]["node"]["id"],
        id.as_str()
    );

    let past = app
        .gql(
            As::Admin,
            "mutation($input: CreateNotificationInput!) { scheduleNotification(input: $input, at: \"2001-01-01T00:00:00Z\") { id } }",
            json!({ "input": input("user-1", json!({})) }),
        )
        .await;
    assert_eq!(past.code(), "BAD_USER_INPUT");
}

/// A delivery gateway that fails the first `failures` calls.
async fn flaky_gateway(failures: usize) -> (String, Arc<AtomicUsize>) {
    use axum::http::{HeaderMap, StatusCode};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/deliver",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let counter = Arc::clone(&counter);
                async move {
                    assert!(headers.contains_key("idempotency-key"));
                    assert_eq!(body["channel"], "EMAIL");
                    if counter.fetch_add(1, Ordering::SeqCst) < failures {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::ACCEPTED
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/deliver", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}

async fn failed_deliveries_are_retried_within_the_limit(backend: Backend) {
    let (gateway, calls) = flaky_gateway(3).await;
    let app = TestApp::spawn_notification(
        backend,
        &[
            ("NOTIFICATION_WEBHOOK_URL", &gateway),
            ("DEFAULT_RETRY_ATTEMPTS", "2"),
            ("NOTIFICATION_RETRY_BACKOFF", "1h"),
        ],
    )
    .await;
    let created = create(&app, input("user-1", json!({ "channel": "EMAIL" }))).await;
    let failed = &created.data()["createNotification"];
    assert_eq!(failed["status"], "FAILED");
    assert!(failed["failureReason"].as_str().unwrap().contains("503"));
    let id = failed["id"].as_str().unwrap().to_owned();

    let retry = "mutation($id: ID!) { retryNotification(id: $id) { status retryCount } }";
    let first = app.gql(As::Admin, retry, json!({ "id": id })).await;
    assert_eq!(
        first.data()["retryNotification"],
        json!({ "status": "FAILED", "retryCount": 1 })
    );
    let second = app.gql(As::Admin, retry, json!({ "id": id })).await;
    assert_eq!(
        second.data()["retryNotification"],
        json!({ "status": "FAILED", "retryCount": 2 })
    );
    let third = app.gql(As::Admin, retry, json!({ "id": id })).await;
    assert_eq!(third.code(), "CONFLICT", "the retry budget is spent");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let sent = app
        .gql(
            As::Admin,
            "mutation($id: ID!) { sendNotification(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        sent.data()["sendNotification"]["status"],
        "SENT",
        "an admin may still send it by hand"
    );
    assert_eq!(
        app.gql(As::Admin, retry, json!({ "id": id })).await.code(),
        "CONFLICT",
        "nothing to retry"
    );
    assert_eq!(
        app.gql(As::User, retry, json!({ "id": id })).await.code(),
        "FORBIDDEN"
    );

    let no_gateway = TestApp::spawn_notification(backend, &[]).await;
    let sms = create(&no_gateway, input("user-1", json!({ "channel": "SMS" }))).await;
    assert_eq!(sms.data()["createNotification"]["status"], "FAILED");
    assert!(
        sms.data()["createNotification"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("NOTIFICATION_WEBHOOK_URL")
    );
}

async fn the_scheduler_retries_failures_by_itself(backend: Backend) {
    let (gateway, calls) = flaky_gateway(1).await;
    let app = TestApp::spawn_notification(
        backend,
        &[
            ("NOTIFICATION_WEBHOOK_URL", &gateway),
            ("NOTIFICATION_RETRY_BACKOFF", "200ms"),
            ("NOTIFICATION_SCHEDULER_INTERVAL", "100ms"),
        ],
    )
    .await;
    let id = created_id(&app, input("user-1", json!({ "channel": "EMAIL" }))).await;
    wait_for_status(&app, &id, "SENT").await;
    assert_eq!(
        get(&app, As::User, &id).await.data()["notification"]["retryCount"],
        1
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn update_delete_and_expiry(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    let id = created_id(&app, input("user-1", json!({}))).await;
    let update = "mutation($id: ID!, $input: UpdateNotificationInput!) { updateNotification(id: $id, input: $input) { title data priority } }";
    let changed = app
        .gql(As::Admin, update, json!({ "id": id, "input": { "title": "Changed", "data": null, "priority": "URGENT" } }))
        .await;
    assert_eq!(
        changed.data()["updateNotification"],
        json!({ "title": "Changed", "data": null, "priority": "URGENT" })
    );
    assert_eq!(
        app.gql(
            As::User,
            update,
            json!({ "id": id, "input": { "title": "x" } })
        )
        .await
        .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        app.gql(
            As::Admin,
            update,
            json!({ "id": id, "input": { "title": "" } })
        )
        .await
        .code(),
        "BAD_USER_INPUT"
    );

    let delete = "mutation($id: ID!) { deleteNotification(id: $id) }";
    assert_eq!(
        app.gql(As::OtherUser, delete, json!({ "id": id }))
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql(As::User, delete, json!({ "id": id })).await.data()["deleteNotification"],
        true
    );
    assert_eq!(
        app.gql(As::User, delete, json!({ "id": id })).await.code(),
        "NOT_FOUND"
    );

    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let short_lived = created_id(&app, input("user-1", json!({ "expiresAt": soon }))).await;
    let kept = created_id(&app, input("user-1", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cleanup = "mutation { cleanupExpiredNotifications }";
    assert_eq!(
        app.gql(As::User, cleanup, json!({})).await.code(),
        "FORBIDDEN"
    );
    assert_eq!(
        app.gql(As::Admin, cleanup, json!({})).await.data()["cleanupExpiredNotifications"],
        1
    );
    assert_eq!(get(&app, As::User, &short_lived).await.code(), "NOT_FOUND");
    assert_eq!(
        get(&app, As::User, &kept).await.data()["notification"]["id"],
        kept.as_str()
    );
}

async fn expired_notifications_are_cleaned_up_in_the_background(backend: Backend) {
    let app = TestApp::spawn_notification(
        backend,
        &[("NOTIFICATION_TTL", "300ms"), ("CLEANUP_INTERVAL", "100ms")],
    )
    .await;
    let id = created_id(&app, input("user-1", json!({}))).await;
    // Until the cleanup job runs the notification is there; then it is
    // NOT_FOUND. Any other answer (another error) fails the test.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = get(&app, As::User, &id).await;
        if response.body.get("errors").is_some() {
            assert_eq!(response.code(), "NOT_FOUND", "{:#}", response.body);
            assert_eq!(response.body["data"]["notification"], Value::Null);
            break;
        }
        assert_eq!(
            response.data()["notification"]["id"],
            id.as_str(),
            "{:#}",
            response.body
        );
        assert!(Instant::now() < deadline, "the cleanup job deletes it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ownership_and_bad_input(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    let id = created_id(&app, input("user-1", json!({}))).await;
    assert_eq!(get(&app, As::OtherUser, &id).await.code(), "NOT_FOUND");
    assert_eq!(
        get(&app, As::Anonymous, &id).await.code(),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        get(&app, As::Admin, &id).await.data()["notification"]["id"],
        id.as_str()
    );
    let read = "mutation($id: ID!) { markNotificationRead(id: $id) { id } }";
    assert_eq!(
        app.gql(As::OtherUser, read, json!({ "id": id }))
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql(As::Admin, read, json!({ "id": id })).await.code(),
        "NOT_FOUND",
        "only the recipient reads"
    );

    let entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Notification { id } ... on User { notifications { edges { node { id } } } } } }";
    let hidden = app
        .gql(
            As::OtherUser,
            entities,
            json!({ "r": [{ "__typename": "Notification", "id": id }] }),
        )
        .await;
    assert_eq!(hidden.data()["_entities"], json!([null]));
    let other_inbox = app
        .gql(
            As::OtherUser,
            entities,
            json!({ "r": [{ "__typename": "User", "id": "user-1" }] }),
        )
        .await;
    assert_eq!(other_inbox.code(), "NOT_FOUND");

    for (overrides, what) in [
        (json!({ "title": " " }), "blank title"),
        (json!({ "message": "" }), "empty message"),
        (json!({ "userId": "" }), "no recipient"),
        (
            json!({ "expiresAt": "2001-01-01T00:00:00Z" }),
            "expiry in the past",
        ),
    ] {
        assert_eq!(
            create(&app, input("user-1", overrides)).await.code(),
            "BAD_USER_INPUT",
            "{what}"
        );
    }
    let bad_enum = create(&app, input("user-1", json!({ "type": "NOPE" }))).await;
    assert!(!bad_enum.codes().is_empty());
    assert_eq!(create(&app, input("user-1", json!({}))).await.status, 200);
    let user_create = app
        .gql(As::User, "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }", json!({ "input": input("user-1", json!({})) }))
        .await;
    assert_eq!(user_create.code(), "FORBIDDEN");
}

backend_tests!(
    in_app_notifications_are_delivered_read_and_counted,
    inbox_filters_and_pages,
    bulk_creation_is_all_or_none,
    scheduled_notifications_arrive_when_due,
    failed_deliveries_are_retried_within_the_limit,
    the_scheduler_retries_failures_by_itself,
    update_delete_and_expiry,
    expired_notifications_are_cleaned_up_in_the_background,
    ownership_and_bad_input,
);
