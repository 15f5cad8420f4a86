//! Versioned schema migrations, applied in order inside one transaction at open.
//!
//! The schema version is SQLite's `user_version`. A migration is never edited once released; a change
//! is a new entry at the end of [`MIGRATIONS`].

use crate::backend;
use cairn_storage::{StorageError, StorageResult};
use rusqlite::Connection;

/// Every migration, in order. `MIGRATIONS[n]` moves the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: profiles, identifiers, events. (De-duplication keeps its window in memory, rebuilt from
    // the events' message ids at start.)
    "CREATE TABLE profiles (
         rank INTEGER PRIMARY KEY,
         workspace TEXT NOT NULL,
         id TEXT NOT NULL,
         partition INTEGER NOT NULL,
         user_id TEXT,
         merged_into TEXT,
         traits TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );
     CREATE UNIQUE INDEX profiles_by_id ON profiles (workspace, id);
     CREATE INDEX profiles_by_merged_into ON profiles (workspace, merged_into) WHERE merged_into IS NOT NULL;

     CREATE TABLE identifiers (
         workspace TEXT NOT NULL,
         kind TEXT NOT NULL,
         value TEXT NOT NULL,
         profile_id TEXT NOT NULL,
         PRIMARY KEY (workspace, kind, value)
     ) WITHOUT ROWID;
     CREATE INDEX identifiers_by_profile ON identifiers (workspace, profile_id);

     CREATE TABLE events (
         seq INTEGER PRIMARY KEY,
         workspace TEXT NOT NULL,
         partition INTEGER NOT NULL,
         profile_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         message_id TEXT NOT NULL,
         name TEXT,
         timestamp INTEGER NOT NULL,
         received_at INTEGER NOT NULL,
         body TEXT NOT NULL
     );
     CREATE INDEX events_by_profile ON events (profile_id, timestamp, seq);",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: usize = MIGRATIONS.len();

pub(crate) fn migrate(connection: &mut Connection) -> StorageResult<()> {
    let version: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    if version > CURRENT_VERSION {
        return Err(StorageError::Corrupt(format!(
            "the database has schema version {version}, newer than this build's {CURRENT_VERSION}"
        )));
    }
    let transaction = connection.transaction().map_err(backend)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        transaction.execute_batch(migration).map_err(backend)?;
        transaction
            .pragma_update(None, "user_version", index + 1)
            .map_err(backend)?;
    }
    transaction.commit().map_err(backend)
}
