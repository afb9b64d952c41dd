#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod connect;
pub mod contract;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod guide;
pub mod health;
pub mod hook;
pub mod memory;
pub mod message;
pub mod observe;
pub mod pool;
pub mod properties;
pub mod schema;
pub mod sql_filter;
pub mod sweep;
pub mod template;
#[cfg(feature = "tls")]
pub mod tls;
pub mod topic;
pub mod value;
pub mod write;

mod ordering;
mod suggest;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{
    Ack, Backend, BackendError, BackendResult, ClientStatus, ErrorKind, FailureRecord,
    FetchRequest, WriteOptions,
};
pub use config::{BackendKind, Config, ConfigError, Limits, OfflineMode, PayloadFormat, Rule};
pub use connect::{connect_pools, Connect};
pub use engine::{
    DeliveryOptions, Engine, EngineError, LateSubscriptions, Outcome, Pools, RuleError,
    RuleMetrics, Subscribed,
};
pub use error::CommonError;
pub use health::{PoolHealth, PoolState};
pub use hook::{
    ClientConnected, ClientDisconnected, ClientInfo, Event, Hook, MessageDelivery,
    SessionSubscribed, SessionUnsubscribed,
};
pub use memory::MemoryBackend;
pub use message::{new_message_id, Message, QoS, Subscription, Timestamp};
pub use pool::{start_pool, PoolBackend, StartMode};
pub use properties::Properties;
pub use sweep::SweepMetrics;
pub use template::Statement;
pub use value::{Row, Value};
pub use write::{BufferFull, QueryMode, WriteMetrics, WritePolicy};

/// Re-exported so backends and brokers use the same `Bytes`.
pub use bytes::Bytes;
