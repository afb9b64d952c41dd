#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backends;
#[cfg(all(feature = "redis", feature = "pgsql", feature = "mysql"))]
pub mod bulk;
pub mod cpu;
pub mod glue;
pub mod observability;
pub mod session;
pub mod testbed;
