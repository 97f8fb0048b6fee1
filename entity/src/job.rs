use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a job is in the queue. A string with a CHECK constraint, like photo status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_at`.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Claimed by `locked_by` until `locked_until`.
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Gave up after `max_attempts`; `last_error` says why.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// A unit of background work in the durable queue.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub kind: String,
    /// JSON.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    #[sea_orm(indexed, default_value = "queued")]
    pub status: JobStatus,
    #[sea_orm(default_value = 0)]
    pub attempts: i32,
    #[sea_orm(default_value = 5)]
    pub max_attempts: i32,
    #[sea_orm(indexed)]
    pub run_at: DateTimeUtc,
    #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        crate::timestamps::touch(&mut self.created_at, &mut self.updated_at, insert);
        Ok(self)
    }
}
