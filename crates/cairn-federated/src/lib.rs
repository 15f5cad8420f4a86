//! Federated attributes: customer data that stays in its source system and is fetched on demand.
//!
//! An attribute set (for example `loyalty` = points and tier from the commerce database) is declared
//! with a connector — PostgreSQL, MySQL/MariaDB (a parameterized query taking the source record id)
//! or HTTP (a URL template and JSON-pointer mapping of the response) — a timeout, a cache TTL and a
//! failure policy (fail, use the stale cached value, or use a default). Values live only in an
//! in-memory cache, never in Cairn's store. An update can be written back to the source system
//! (an SQL update or an HTTP call); every write-back returns an audit record for the caller to
//! store.
//!
//! ```text
//! let attributes = FederatedAttributes::new(config, Arc::new(SystemClock))?;
//! let fetched = attributes.fetch("loyalty", "customer-42").await?;   // values + where they came from
//! let audit = attributes.write_back("loyalty", "customer-42", "points", json!(120), "journey:7").await?;
//! ```

pub mod cache;
pub mod clock;
pub mod config;
pub mod connector;
pub mod error;
pub mod service;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AttributeConfig, ConnectorConfig, FailurePolicy, FederatedConfig};
pub use error::FederatedError;
pub use service::{AuditRecord, FederatedAttributes, FetchOrigin, Fetched, WriteOutcome};

/// The values of one attribute set for one record: field → JSON value.
pub type AttributeValues = std::collections::BTreeMap<String, serde_json::Value>;
