//! Per-user sequence numbers: the order in which a user's notifications
//! were announced (committed with their `NotificationCreated`), which is
//! what `notificationAdded(after:)` resumes by.
//!
//! Ids are UUID v7 taken before the insert commits, so two notifications
//! of one user created at the same moment can commit (and be published)
//! in the opposite order of their ids; an id cursor then skips one and
//! repeats another. `notifications.seq` is assigned from the user's row
//! in `notification_sequences`, incremented in the transaction that
//! announces the notification: the row lock serialises one user's
//! announcements, so a later commit always has a higher number. It is
//! null while a scheduled notification waits for its delivery.
//!
//! Existing announced notifications (every unscheduled one, and scheduled
//! ones already sent or read) are numbered in id order, each user from 1,
//! and each user's counter starts after its highest number.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len};
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    UserId,
    Seq,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotificationSequences {
    Table,
    UserId,
    LastSeq,
}

/// Which rows were announced (published as `NotificationCreated`) under
/// the previous code: unscheduled ones at once, scheduled ones when sent.
const ANNOUNCED: &str = "(scheduled_at IS NULL OR status IN ('SENT', 'READ'))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotificationSequences::Table)
                    .if_not_exists()
                    .col(string_len(NotificationSequences::UserId, 200).primary_key())
                    .col(big_integer(NotificationSequences::LastSeq))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .add_column_if_not_exists(big_integer_null(Notifications::Seq))
                    .to_owned(),
            )
            .await?;

        // Number what is there, per user, in id order.
        let numbered = format!(
            "SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS n \
             FROM notifications WHERE {ANNOUNCED}"
        );
        let backfill = match manager.get_database_backend() {
            DatabaseBackend::MySql => format!(
                "UPDATE notifications JOIN ({numbered}) AS numbered \
                 ON notifications.id = numbered.id SET notifications.seq = numbered.n"
            ),
            _ => format!(
                "UPDATE notifications SET seq = numbered.n FROM ({numbered}) AS numbered \
                 WHERE notifications.id = numbered.id"
            ),
        };
        let db = manager.get_connection();
        db.execute_unprepared(&backfill).await?;
        db.execute_unprepared(
            "INSERT INTO notification_sequences (user_id, last_seq) \
             SELECT user_id, MAX(seq) FROM notifications WHERE seq IS NOT NULL GROUP BY user_id",
        )
        .await?;

        // The resume read (`user_id = ? AND seq > ? ORDER BY seq`), and a
        // guard: one user never has two notifications with one number
        // (nulls, the scheduled ones, do not collide).
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_user_seq")
                    .table(Notifications::Table)
                    .col(Notifications::UserId)
                    .col(Notifications::Seq)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_notifications_user_seq")
                    .table(Notifications::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .drop_column(Notifications::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(NotificationSequences::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
