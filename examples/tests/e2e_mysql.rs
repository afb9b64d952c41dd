//! The broker on MySQL/MariaDB (`--features mysql`), driven by real MQTT clients.
#![cfg(feature = "mysql")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::mysql());
