//! The broker on MongoDB (`--features mongo`), driven by real MQTT clients
//! (the test set-up's server is FerretDB): every broker scenario.
#![cfg(feature = "mongo")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::mongo());
