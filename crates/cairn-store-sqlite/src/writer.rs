//! The single writer: one connection, one transaction per [`Store::write`] call.

use crate::checkpoint::{checkpoint, wal_oversized, Checkpointer};
use crate::codec::{decode_traits, encode_traits, from_millis, millis};
use crate::{backend, DirLock};
use cairn_core::identity::ProfileHead;
use cairn_model::{Identifier, PartitionId, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::{NewEvent, ProfileState, RecentMessageId, StorageResult, Store, WriteTxn};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::PathBuf;
use std::sync::Arc;

/// The store's single writer. Its connection never checkpoints the WAL on commit: a
/// [`Checkpointer`] thread does that off the commit path, and the writer only restarts an oversized
/// WAL between commits.
pub struct SqliteWriter {
    connection: Connection,
    wal: PathBuf,
    commits: u64,
    _checkpointer: Checkpointer,
    _lock: Arc<DirLock>,
}

/// Commits between two checks of the WAL's size.
const WAL_CHECK_EVERY_COMMITS: u64 = 32;

impl SqliteWriter {
    pub(crate) fn new(
        connection: Connection,
        checkpointer: Checkpointer,
        wal: PathBuf,
        lock: Arc<DirLock>,
    ) -> Self {
        SqliteWriter {
            connection,
            wal,
            commits: 0,
            _checkpointer: checkpointer,
            _lock: lock,
        }
    }

    /// Between commits, restarts an oversized WAL (the passive checkpoints cannot while we write).
    fn bound_wal(&mut self) {
        self.commits += 1;
        if self.commits.is_multiple_of(WAL_CHECK_EVERY_COMMITS) && wal_oversized(&self.wal) {
            if let Err(error) = checkpoint(&self.connection, "RESTART") {
                tracing::warn!(%error, "could not restart the oversized WAL; will retry");
            }
        }
    }
}

impl Store for SqliteWriter {
    fn write(
        &mut self,
        work: &mut dyn FnMut(&mut dyn WriteTxn) -> StorageResult<()>,
    ) -> StorageResult<()> {
        {
            let transaction = self.connection.transaction().map_err(backend)?;
            let mut txn = SqliteTxn { transaction };
            work(&mut txn)?;
            // Dropping an uncommitted transaction rolls it back, so an error above keeps nothing.
            txn.transaction.commit().map_err(backend)?;
        }
        self.bound_wal();
        Ok(())
    }

    fn recent_message_ids(
        &mut self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> StorageResult<Vec<RecentMessageId>> {
        // Events are in commit order, which follows receive order up to the length of a commit; the
        // slack keeps scanning past the first older event so reordered neighbours are not missed.
        let stop_before = millis(since) - RECEIVE_ORDER_SLACK_MS;
        let mut statement = self
            .connection
            .prepare("SELECT workspace, message_id, received_at FROM events ORDER BY seq DESC")
            .map_err(backend)?;
        let mut rows = statement.query([]).map_err(backend)?;
        let mut recent = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let received_at: i64 = row.get(2).map_err(backend)?;
            if received_at < stop_before || recent.len() >= limit {
                break;
            }
            if received_at >= millis(since) {
                recent.push(RecentMessageId {
                    workspace: WorkspaceId(row.get(0).map_err(backend)?),
                    message_id: row.get(1).map_err(backend)?,
                    received_at: from_millis(received_at)?,
                });
            }
        }
        Ok(recent)
    }
}

/// How far receive times may run backwards in commit order (a request's receive time is taken before
/// it waits for its commit).
const RECEIVE_ORDER_SLACK_MS: i64 = 60_000;

struct SqliteTxn<'c> {
    transaction: Transaction<'c>,
}

impl WriteTxn for SqliteTxn<'_> {
    fn find_by_identifier(
        &mut self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> StorageResult<Option<ProfileHead>> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "SELECT p.id, p.rank, p.user_id FROM identifiers i
                 JOIN profiles p ON p.workspace = i.workspace AND p.id = i.profile_id
                 WHERE i.workspace = ?1 AND i.kind = ?2 AND i.value = ?3",
            )
            .map_err(backend)?;
        statement
            .query_row(
                params![
                    workspace.as_str(),
                    identifier.kind.as_str(),
                    identifier.value
                ],
                |row| {
                    Ok(ProfileHead {
                        id: ProfileId(row.get(0)?),
                        rank: row.get(1)?,
                        user_id: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn load_profile(
        &mut self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> StorageResult<Option<ProfileState>> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "SELECT rank, user_id, traits, created_at, updated_at FROM profiles WHERE workspace = ?1 AND id = ?2",
            )
            .map_err(backend)?;
        let row = statement
            .query_row(params![workspace.as_str(), id.as_str()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .optional()
            .map_err(backend)?;
        let Some((rank, user_id, traits, created_at, updated_at)) = row else {
            return Ok(None);
        };
        Ok(Some(ProfileState {
            head: ProfileHead {
                id: id.clone(),
                rank,
                user_id,
            },
            partition: PartitionId::of(id),
            traits: decode_traits(&traits)?,
            created_at: from_millis(created_at)?,
            updated_at: from_millis(updated_at)?,
        }))
    }

    fn create_profile(
        &mut self,
        workspace: &WorkspaceId,
        id: &ProfileId,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> StorageResult<i64> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "INSERT INTO profiles (workspace, id, partition, user_id, traits, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .map_err(backend)?;
        statement
            .execute(params![
                workspace.as_str(),
                id.as_str(),
                PartitionId::of(id).0,
                user_id,
                encode_traits(&TraitSet::default()),
                millis(at)
            ])
            .map_err(backend)?;
        Ok(self.transaction.last_insert_rowid())
    }

    fn save_profile(&mut self, workspace: &WorkspaceId, state: &ProfileState) -> StorageResult<()> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "UPDATE profiles SET user_id = ?3, traits = ?4, updated_at = ?5 WHERE workspace = ?1 AND id = ?2",
            )
            .map_err(backend)?;
        statement
            .execute(params![
                workspace.as_str(),
                state.head.id.as_str(),
                state.head.user_id,
                encode_traits(&state.traits),
                millis(state.updated_at)
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn link_identifier(
        &mut self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
        profile: &ProfileId,
    ) -> StorageResult<()> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "INSERT INTO identifiers (workspace, kind, value, profile_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace, kind, value) DO UPDATE SET profile_id = excluded.profile_id",
            )
            .map_err(backend)?;
        statement
            .execute(params![
                workspace.as_str(),
                identifier.kind.as_str(),
                identifier.value,
                profile.as_str()
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn merge_profile(
        &mut self,
        workspace: &WorkspaceId,
        loser: &ProfileId,
        survivor: &ProfileId,
    ) -> StorageResult<()> {
        let ws = workspace.as_str();
        self.transaction
            .prepare_cached(
                "UPDATE identifiers SET profile_id = ?3 WHERE workspace = ?1 AND profile_id = ?2",
            )
            .and_then(|mut s| s.execute(params![ws, loser.as_str(), survivor.as_str()]))
            .map_err(backend)?;
        // Keep merge chains one hop long: whatever was merged into the loser now points at the survivor.
        self.transaction
            .prepare_cached("UPDATE profiles SET merged_into = ?3 WHERE workspace = ?1 AND (merged_into = ?2 OR id = ?2)")
            .and_then(|mut s| s.execute(params![ws, loser.as_str(), survivor.as_str()]))
            .map_err(backend)?;
        Ok(())
    }

    fn append_event(&mut self, event: &NewEvent<'_>) -> StorageResult<i64> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "INSERT INTO events (workspace, partition, profile_id, kind, message_id, name, timestamp, received_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(backend)?;
        let body = serde_json::to_string(event.body)
            .map_err(|e| cairn_storage::StorageError::Backend(e.to_string()))?;
        statement
            .execute(params![
                event.workspace.as_str(),
                event.partition.0,
                event.profile.as_str(),
                event.kind.as_str(),
                event.message_id,
                event.name,
                millis(event.timestamp),
                millis(event.received_at),
                body
            ])
            .map_err(backend)?;
        Ok(self.transaction.last_insert_rowid())
    }
}
