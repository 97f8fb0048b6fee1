//! photo_change_notify: photos, users (triggers, PostgreSQL only)
//!
//! Written by hand (`cargo run -p migration -- generate NAME`): autogenerate does not see
//! triggers. On PostgreSQL every update or deletion of a photo, and every change of an
//! account's `token_generation` (its sessions ended), sends `NOTIFY aistory_photos` from the
//! transaction that makes it, delivered at commit to every API process listening
//! (`service::photos::changes`): an open event stream looks at its photo only when told to,
//! instead of polling. The payload is `p:{photo id}` or `u:{user id}`. On SQLite and MySQL
//! nothing changes: there one poller per API process watches the photos of its streams.
//!
//! `CREATE TRIGGER` takes a SHARE ROW EXCLUSIVE lock on its table for an instant (writes wait,
//! reads do not), bounded by `AISTORY_MIGRATION_LOCK_TIMEOUT_SECS` like every statement here.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 4] = [
    "CREATE OR REPLACE FUNCTION aistory_notify_photo() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF TG_OP = 'DELETE' THEN \
         PERFORM pg_notify('aistory_photos', 'p:' || OLD.id); \
       ELSE \
         PERFORM pg_notify('aistory_photos', 'p:' || NEW.id); \
       END IF; \
       RETURN NULL; \
     END $$",
    "CREATE TRIGGER photos_notify AFTER UPDATE OR DELETE ON photos \
     FOR EACH ROW EXECUTE FUNCTION aistory_notify_photo()",
    "CREATE OR REPLACE FUNCTION aistory_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       PERFORM pg_notify('aistory_photos', 'u:' || NEW.id); \
       RETURN NULL; \
     END $$",
    "CREATE TRIGGER users_notify_sessions AFTER UPDATE OF token_generation ON users \
     FOR EACH ROW WHEN (OLD.token_generation IS DISTINCT FROM NEW.token_generation) \
     EXECUTE FUNCTION aistory_notify_user()",
];

const DOWN: [&str; 4] = [
    "DROP TRIGGER IF EXISTS users_notify_sessions ON users",
    "DROP FUNCTION IF EXISTS aistory_notify_user()",
    "DROP TRIGGER IF EXISTS photos_notify ON photos",
    "DROP FUNCTION IF EXISTS aistory_notify_photo()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            for statement in UP {
                manager
                    .get_connection()
                    .execute_unprepared(statement)
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            for statement in DOWN {
                manager
                    .get_connection()
                    .execute_unprepared(statement)
                    .await?;
            }
        }
        Ok(())
    }
}
