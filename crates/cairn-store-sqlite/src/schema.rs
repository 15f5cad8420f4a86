//! Versioned schema migrations, applied in order inside one transaction at open.
//!
//! The schema version of each database is SQLite's `user_version`. A migration is never edited once
//! released; a change is a new entry at the end of its list.

use crate::backend;
use cairn_storage::{StorageError, StorageResult};
use rusqlite::Connection;

/// Migrations of `log.db`. `LOG[n]` moves the schema from version `n` to `n + 1`.
pub(crate) const LOG: &[&str] = &[
    // 1: the input log. `keys` holds the 16-byte de-duplication key of each message (little endian),
    // so the window can be rebuilt without decoding payloads.
    "CREATE TABLE log (
         seq INTEGER PRIMARY KEY,
         kind INTEGER NOT NULL,
         workspace TEXT NOT NULL,
         received_at INTEGER NOT NULL,
         count INTEGER NOT NULL,
         keys BLOB NOT NULL,
         payload BLOB NOT NULL
     );",
];

/// Migrations of `delivery.db`.
pub(crate) const DELIVERY: &[&str] = &[
    // 1: one row per message the dispatcher has touched, and named marks.
    "CREATE TABLE deliveries (
         message_id TEXT PRIMARY KEY,
         workspace TEXT NOT NULL,
         channel TEXT NOT NULL,
         state TEXT NOT NULL,
         attempts INTEGER NOT NULL,
         next_attempt_at INTEGER,
         provider TEXT,
         provider_message_id TEXT,
         last_error TEXT,
         updated_at INTEGER NOT NULL,
         outbox TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX deliveries_by_state ON deliveries (state, updated_at);
     CREATE INDEX deliveries_retries ON deliveries (next_attempt_at) WHERE state = 'retrying';
     CREATE INDEX deliveries_by_workspace ON deliveries (workspace, state, updated_at);
     CREATE TABLE marks (
         name TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;",
];

/// Migrations of `state.db`.
pub(crate) const STATE: &[&str] = &[
    // 1: checkpointed profiles and timelines, and the log position they reflect.
    "CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('applied_seq', 0);

     CREATE TABLE profiles (
         rank INTEGER PRIMARY KEY,
         workspace TEXT NOT NULL,
         id TEXT NOT NULL,
         user_id TEXT,
         merged_into INTEGER,
         identifiers TEXT NOT NULL,
         traits TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         event_count INTEGER NOT NULL
     );

     CREATE TABLE timeline (
         profile INTEGER NOT NULL,
         timestamp INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         PRIMARY KEY (profile, timestamp, seq)
     ) WITHOUT ROWID;",
    // 2: journeys: per-profile engine state, the outbox, traces, workspace registries, counters.
    "ALTER TABLE profiles ADD COLUMN extra BLOB NOT NULL DEFAULT x'';

     CREATE TABLE outbox (
         message_id TEXT PRIMARY KEY,
         workspace TEXT NOT NULL,
         profile INTEGER NOT NULL,
         journey TEXT NOT NULL,
         channel TEXT NOT NULL,
         at INTEGER NOT NULL,
         body TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX outbox_by_profile ON outbox (profile, at);

     CREATE TABLE traces (
         profile INTEGER NOT NULL,
         journey TEXT NOT NULL,
         enrollment INTEGER NOT NULL,
         position INTEGER NOT NULL,
         at INTEGER NOT NULL,
         entry TEXT NOT NULL,
         PRIMARY KEY (profile, journey, enrollment, position)
     ) WITHOUT ROWID;

     CREATE TABLE registries (
         workspace TEXT PRIMARY KEY,
         state BLOB NOT NULL
     ) WITHOUT ROWID;",
    // 3: the delivery decision of each outbox message (ready, delayed, skipped).
    "ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'ready';
     CREATE INDEX outbox_ready ON outbox (status, at) WHERE status = 'ready';",
    // 4: Customer 360: per workspace, the source records and the identity resolver's state.
    "CREATE TABLE identity (
         workspace TEXT PRIMARY KEY,
         state BLOB NOT NULL
     ) WITHOUT ROWID;",
];

/// Brings `connection`'s schema up to the end of `migrations`.
pub(crate) fn migrate(connection: &mut Connection, migrations: &[&str]) -> StorageResult<()> {
    let version: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    if version > migrations.len() {
        return Err(StorageError::Corrupt(format!(
            "the database has schema version {version}, newer than this build's {}",
            migrations.len()
        )));
    }
    let transaction = connection.transaction().map_err(backend)?;
    for (index, migration) in migrations.iter().enumerate().skip(version) {
        transaction.execute_batch(migration).map_err(backend)?;
        transaction
            .pragma_update(None, "user_version", index + 1)
            .map_err(backend)?;
    }
    transaction.commit().map_err(backend)
}
