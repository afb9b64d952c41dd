#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
mod convert;
mod driver;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod schema;
mod sequence;
mod statements;

pub use backend::{connect_pools, CassaBackend};
pub use config::KIND;
pub use config::{CassaConfig, CassaTls, Consistency};
pub use error::CassaError;

/// The driver, re-exported so users name the same version.
pub use cdrs_tokio;
