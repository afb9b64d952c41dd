#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
mod convert;
pub mod error;
pub mod filter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod schema;
pub mod statements;
mod tls;

pub use backend::{connect_pools, PgsqlBackend};
pub use config::{PgsqlConfig, TlsSettings};
pub use error::PgsqlError;

/// The driver, re-exported so users name the same version.
pub use tokio_postgres;

/// The pool, re-exported so users name the same version.
pub use deadpool_postgres;
