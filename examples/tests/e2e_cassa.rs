//! The broker on Cassandra (`--features cassa`), driven by real MQTT
//! clients (the database read back through the backend itself): every
//! broker scenario.
#![cfg(feature = "cassa")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::cassa());
