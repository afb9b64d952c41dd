#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
pub mod channel;
pub mod config;
pub mod error;
pub mod keys;

#[cfg(feature = "cluster")]
mod cluster;
mod conn;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod scripts;

pub use backend::{connect_pools, IndexRebuild, RedisBackend};
pub use channel::{ChannelCommand, ChannelListener, ChannelStats};
pub use config::RedisSettings;
pub use config::KIND;
pub use error::RedisError;

/// The `redis` crate this backend is built on, re-exported so a broker
/// uses the same version (for [`RedisBackend::connection`]).
pub use redis;
