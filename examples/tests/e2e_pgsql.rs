//! The broker on PostgreSQL (`--features pgsql`), driven by real MQTT clients.
#![cfg(feature = "pgsql")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::pgsql());
