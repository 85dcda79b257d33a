//! Notifications, with the indexes the inbox, the scheduler and the
//! cleanup use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, string_len, string_len_null, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    UserId,
    Type,
    Title,
    Message,
    Data,
    Channel,
    Status,
    Priority,
    RetryCount,
    FailureReason,
    ScheduledAt,
    SentAt,
    ReadAt,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Notifications::*;
        manager
            .create_table(
                sea_orm_migration::prelude::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(pk_uuid(Id))
                    .col(string_len(UserId, 200))
                    .col(string_len(Type, 40))
                    .col(string_len(Title, 200))
                    .col(text(Message))
                    .col(text_null(Data))
                    .col(string_len(Channel, 16))
                    .col(string_len(Status, 16))
                    .col(string_len(Priority, 16))
                    .col(integer(RetryCount))
                    .col(string_len_null(FailureReason, 500))
                    .col(timestamp_with_time_zone_null(ScheduledAt))
                    .col(timestamp_with_time_zone_null(SentAt))
                    .col(timestamp_with_time_zone_null(ReadAt))
                    .col(timestamp_with_time_zone_null(ExpiresAt))
                    .col(timestamp_with_time_zone(CreatedAt))
                    .col(timestamp_with_time_zone(UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[Notifications]); 4] = [
            ("idx_notifications_user_created", &[UserId, CreatedAt, Id]),
            ("idx_notifications_user_status", &[UserId, Status]),
            ("idx_notifications_status_scheduled", &[Status, ScheduledAt]),
            ("idx_notifications_expires", &[ExpiresAt]),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(Table).if_not_exists();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Notifications::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
