//! Column helpers the migration sets share, so a column type means the
//! same on every backend wherever it is declared.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// A UTC instant with microseconds on every backend (MySQL's plain
/// `datetime`/`timestamp` would drop the fraction).
pub fn instant(manager: &SchemaManager, column: impl IntoIden, nullable: bool) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match manager.get_database_backend() {
        DatabaseBackend::MySql => def.custom(Alias::new("datetime(6)")),
        _ => def.timestamp_with_time_zone(),
    };
    if nullable {
        def.null();
    } else {
        def.not_null();
    }
    def
}
