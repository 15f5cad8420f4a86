//! Concurrent reads through a small pool of connections (WAL readers see the last commit).

use crate::codec::{decode_kind, decode_traits, from_millis};
use crate::{backend, connect, DirLock};
use cairn_model::{Identifier, IdentifierKind, Profile, ProfileId, StoredEvent, WorkspaceId};
use cairn_storage::{EventCursor, ReadStore, StorageError, StorageResult};
use parking_lot::Mutex;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::Arc;

/// Most idle read connections kept open.
const POOL_SIZE: usize = 8;

/// Read access to the store, shareable across threads.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    _lock: Option<Arc<DirLock>>,
}

impl SqliteReader {
    pub(crate) fn new(path: PathBuf, lock: Option<Arc<DirLock>>) -> Self {
        SqliteReader {
            path,
            idle: Mutex::new(Vec::new()),
            _lock: lock,
        }
    }

    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let pooled = self.idle.lock().pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path)?,
        };
        let result = read(&connection);
        let mut idle = self.idle.lock();
        if idle.len() < POOL_SIZE {
            idle.push(connection);
        }
        result
    }
}

fn load_profile(
    connection: &Connection,
    workspace: &WorkspaceId,
    id: &ProfileId,
) -> StorageResult<Option<Profile>> {
    let ws = workspace.as_str();
    let row = connection
        .prepare_cached(
            "SELECT id, partition, merged_into, traits, created_at, updated_at FROM profiles WHERE workspace = ?1 AND id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![ws, id.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, u16>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .optional()
        })
        .map_err(backend)?;
    let Some((id, partition, merged_into, traits, created_at, updated_at)) = row else {
        return Ok(None);
    };
    if let Some(survivor) = merged_into {
        // Merge chains are kept one hop long by the writer.
        return load_profile(connection, workspace, &ProfileId(survivor));
    }
    let identifiers = connection
        .prepare_cached("SELECT kind, value FROM identifiers WHERE workspace = ?1 AND profile_id = ?2 ORDER BY kind, value")
        .and_then(|mut s| {
            s.query_map(params![ws, id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?
        .into_iter()
        .map(|(kind, value)| {
            IdentifierKind::parse(&kind)
                .map(|kind| Identifier::new(kind, value))
                .ok_or_else(|| StorageError::Corrupt(format!("unknown identifier kind {kind:?}")))
        })
        .collect::<StorageResult<Vec<_>>>()?;
    let merged_ids = merged_ids(connection, ws, &id)?;
    let mut timeline = vec![id.clone()];
    timeline.extend(merged_ids.iter().map(|p| p.0.clone()));
    let placeholders = vec!["?"; timeline.len()].join(",");
    let event_count: i64 = connection
        .query_row(
            &format!("SELECT COUNT(*) FROM events WHERE profile_id IN ({placeholders})"),
            params_from_iter(timeline.iter()),
            |row| row.get(0),
        )
        .map_err(backend)?;
    let traits = decode_traits(&traits)?;
    let trait_timestamps = traits
        .set_at
        .iter()
        .map(|(field, ms)| Ok((field.clone(), from_millis(*ms)?)))
        .collect::<StorageResult<_>>()?;
    Ok(Some(Profile {
        id: ProfileId(id),
        workspace: workspace.0.clone(),
        partition,
        identifiers,
        traits: traits.values,
        trait_timestamps,
        merged_ids,
        event_count,
        created_at: from_millis(created_at)?,
        updated_at: from_millis(updated_at)?,
    }))
}

fn merged_ids(
    connection: &Connection,
    workspace: &str,
    survivor: &str,
) -> StorageResult<Vec<ProfileId>> {
    connection
        .prepare_cached(
            "SELECT id FROM profiles WHERE workspace = ?1 AND merged_into = ?2 ORDER BY rank",
        )
        .and_then(|mut s| {
            s.query_map(params![workspace, survivor], |row| {
                Ok(ProfileId(row.get(0)?))
            })?
            .collect()
        })
        .map_err(backend)
}

impl ReadStore for SqliteReader {
    fn profile(&self, workspace: &WorkspaceId, id: &ProfileId) -> StorageResult<Option<Profile>> {
        self.with_connection(|connection| load_profile(connection, workspace, id))
    }

    fn profile_by_identifier(
        &self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> StorageResult<Option<Profile>> {
        self.with_connection(|connection| {
            let id: Option<String> = connection
                .prepare_cached("SELECT profile_id FROM identifiers WHERE workspace = ?1 AND kind = ?2 AND value = ?3")
                .and_then(|mut s| {
                    s.query_row(params![workspace.as_str(), identifier.kind.as_str(), identifier.value], |row| row.get(0))
                        .optional()
                })
                .map_err(backend)?;
            match id {
                Some(id) => load_profile(connection, workspace, &ProfileId(id)),
                None => Ok(None),
            }
        })
    }

    fn events(
        &self,
        workspace: &WorkspaceId,
        profile: &ProfileId,
        before: Option<EventCursor>,
        limit: usize,
    ) -> StorageResult<Vec<StoredEvent>> {
        self.with_connection(|connection| {
            let mut timeline = vec![profile.0.clone()];
            timeline.extend(merged_ids(connection, workspace.as_str(), profile.as_str())?.into_iter().map(|p| p.0));
            let placeholders = vec!["?"; timeline.len()].join(",");
            let cursor = before.unwrap_or(EventCursor { timestamp_ms: i64::MAX, seq: i64::MAX });
            let sql = format!(
                "SELECT seq, profile_id, kind, message_id, name, timestamp, received_at, body FROM events
                 WHERE profile_id IN ({placeholders}) AND workspace = ? AND (timestamp, seq) < (?, ?)
                 ORDER BY timestamp DESC, seq DESC LIMIT ?"
            );
            let mut values: Vec<rusqlite::types::Value> = timeline.into_iter().map(Into::into).collect();
            values.push(workspace.0.clone().into());
            values.push(cursor.timestamp_ms.into());
            values.push(cursor.seq.into());
            values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
            let rows = statement
                .query_map(params_from_iter(values), |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, i64>(5)?,
                        row.get::<_, i64>(6)?,
                        row.get::<_, String>(7)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|(seq, profile_id, kind, message_id, name, timestamp, received_at, body)| {
                    Ok(StoredEvent {
                        seq,
                        profile_id: ProfileId(profile_id),
                        kind: decode_kind(&kind)?,
                        message_id,
                        name,
                        timestamp: from_millis(timestamp)?,
                        received_at: from_millis(received_at)?,
                        message: serde_json::from_str(&body)
                            .map_err(|_| StorageError::Corrupt(format!("event {seq} body is not JSON")))?,
                    })
                })
                .collect()
        })
    }

    fn event_count(&self, workspace: &WorkspaceId) -> StorageResult<i64> {
        self.with_connection(|connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM events WHERE workspace = ?1",
                    params![workspace.as_str()],
                    |row| row.get(0),
                )
                .map_err(backend)
        })
    }

    fn ping(&self) -> StorageResult<()> {
        self.with_connection(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(backend)
        })
    }
}
