#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
mod convert;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod load_data;
pub mod schema;
// The statements and their topic conditions (`statements::filter`),
// which this crate's integration tests look into; not part of the API.
#[doc(hidden)]
pub mod statements;
#[cfg(feature = "tls")]
mod tls;

pub use backend::{connect_pools, MysqlBackend};
pub use config::KIND;
pub use config::{MysqlConfig, TlsSettings};
pub use error::MysqlError;

/// The driver, re-exported so users name the same version.
pub use mysql_async;
