//! Per-user sequence numbers, taken in the transaction that announces a
//! notification (stores it unscheduled, or sends a scheduled one).
//!
//! Each user has one row in `notification_sequences` holding the last
//! number given out. Taking numbers increments that row, which locks it
//! until the transaction ends: a second transaction announcing for the
//! same user waits there, so it takes its numbers — and writes its
//! notifications and their outbox rows — only after the first committed
//! (or rolled back, returning the numbers). Numbers therefore follow
//! commit order, per user, without holes; the outbox relay publishes in
//! outbox order, so each user's `NotificationCreated` events also come
//! out in number order.
//!
//! * PostgreSQL and SQLite: one upsert (`ON CONFLICT … DO UPDATE …
//!   RETURNING`). On SQLite the transaction holds the single write lock
//!   anyway (writers wait for it under the busy timeout).
//! * MariaDB: an `UPDATE` of the row and a read of it. A missing row is
//!   created first, outside the transaction ([`ensure_rows`]): two
//!   transactions creating the same new row would take gap locks and
//!   deadlock. A caller that cannot do that (an event consumer, already
//!   inside its transaction) inserts the row in its transaction; a
//!   concurrent first announcement for that user then fails and is retried
//!   by the consumer.
//!
//! Users are locked in sorted order, so two transactions announcing for
//! the same users cannot wait for each other in a cycle.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

/// Reserves `count` (≥ 1) numbers for `user_id` inside `txn`; returns the
/// last one (the first is `last - count + 1`).
pub(super) async fn reserve(
    txn: &impl ConnectionTrait,
    user_id: &str,
    count: i64,
) -> Result<i64, DbErr> {
    let backend = txn.get_database_backend();
    let statement =
        |sql: &str, values: Vec<Value>| Statement::from_sql_and_values(backend, sql, values);
    match backend {
        DatabaseBackend::MySql => {
            let updated = txn
                .execute_raw(statement(
                    "UPDATE notification_sequences SET last_seq = last_seq + ? WHERE user_id = ?",
                    vec![count.into(), user_id.into()],
                ))
                .await?;
            if updated.rows_affected() == 0 {
                txn.execute_raw(statement(
                    "INSERT INTO notification_sequences (user_id, last_seq) VALUES (?, ?)",
                    vec![user_id.into(), count.into()],
                ))
                .await?;
            }
            let row = txn
                .query_one_raw(statement(
                    "SELECT last_seq FROM notification_sequences WHERE user_id = ?",
                    vec![user_id.into()],
                ))
                .await?;
            last_seq(row, user_id)
        }
        _ => {
            let sql = if backend == DatabaseBackend::Postgres {
                "INSERT INTO notification_sequences (user_id, last_seq) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE \
                 SET last_seq = notification_sequences.last_seq + excluded.last_seq \
                 RETURNING last_seq"
            } else {
                "INSERT INTO notification_sequences (user_id, last_seq) VALUES (?, ?) \
                 ON CONFLICT (user_id) DO UPDATE \
                 SET last_seq = notification_sequences.last_seq + excluded.last_seq \
                 RETURNING last_seq"
            };
            let row = txn
                .query_one_raw(statement(sql, vec![user_id.into(), count.into()]))
                .await?;
            last_seq(row, user_id)
        }
    }
}

/// On MariaDB, creates the counter rows of `user_ids` that do not exist
/// yet, each in its own short statement, before the transaction that
/// takes numbers (see the module docs); nothing on other backends.
pub(super) async fn ensure_rows<'a>(
    db: &impl ConnectionTrait,
    user_ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::MySql {
        return Ok(());
    }
    for user_id in user_ids {
        db.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::MySql,
            "INSERT IGNORE INTO notification_sequences (user_id, last_seq) VALUES (?, 0)",
            vec![user_id.into()],
        ))
        .await?;
    }
    Ok(())
}

/// The last number given out to `user_id` so far (0 if none), as of now.
pub(super) async fn current(db: &impl ConnectionTrait, user_id: &str) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let sql = if backend == DatabaseBackend::Postgres {
        "SELECT last_seq FROM notification_sequences WHERE user_id = $1"
    } else {
        "SELECT last_seq FROM notification_sequences WHERE user_id = ?"
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            vec![user_id.into()],
        ))
        .await?;
    match row {
        None => Ok(0),
        some => last_seq(some, user_id),
    }
}

fn last_seq(row: Option<sea_orm::QueryResult>, user_id: &str) -> Result<i64, DbErr> {
    row.ok_or_else(|| DbErr::Custom(format!("no sequence row for user {user_id:?}")))?
        .try_get::<i64>("", "last_seq")
}
