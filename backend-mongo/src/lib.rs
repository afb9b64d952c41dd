#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod payload;
pub mod schema;
mod tls;

pub use backend::{connect_pools, MongoBackend};
pub use config::MongoConfig;
pub use config::KIND;
pub use error::MongoError;
pub use mongodb;
