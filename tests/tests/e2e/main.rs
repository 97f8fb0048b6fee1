#![recursion_limit = "256"]
//! End-to-end tests: one binary, every test on SQLite, PostgreSQL and MariaDB.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

mod accounts;
mod autogen;
mod database_layer;
mod generated;
mod health;
mod migrations;
mod models;
mod openapi;
mod photos;
mod queue;
mod read_path;
mod stories;
mod unit_of_work;
