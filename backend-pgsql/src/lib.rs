#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
mod convert;
pub mod error;
// Internals this crate's integration tests and benchmark look into; not
// part of the API.
#[doc(hidden)]
pub mod filter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod schema;
#[doc(hidden)]
pub mod statements;

pub use backend::{connect_pools, PgsqlBackend};
pub use config::KIND;
pub use config::{PgsqlConfig, TlsSettings};
pub use error::PgsqlError;

/// The driver, re-exported so users name the same version.
pub use tokio_postgres;

/// The pool, re-exported so users name the same version.
pub use deadpool_postgres;
