//! End-to-end tests: one binary, every test on SQLite, PostgreSQL and MariaDB.

mod database_layer;
mod health;
mod migrations;
mod models;
mod unit_of_work;
