#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
pub mod error;
pub mod schema;
pub mod statements;

pub use backend::{connect_pools, SqliteBackend};
pub use config::{SqliteConfig, Synchronous, KIND};
pub use error::SqliteError;

/// The driver, re-exported so a broker uses the same version.
pub use deadpool_sqlite;
