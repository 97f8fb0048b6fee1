#![recursion_limit = "256"]
//! End-to-end tests: one binary, every test on SQLite, PostgreSQL and MariaDB. Its harness is
//! `aistory_tests::harness` (`harness = false`): register tests with `backend_tests!`,
//! `store_backend_tests!` or `e2e_tests!`, never `#[test]`/`#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

mod accounts;
mod autogen;
mod contract;
mod database_layer;
mod downloads;
mod generated;
mod health;
mod migrations;
mod models;
mod openapi;
mod photos;
mod queue;
mod read_path;
mod replica;
mod security;
mod stories;
mod streams;
mod thumbnails;
mod unit_of_work;

fn main() {
    aistory_tests::harness::refuse_unregistered_tests(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e"
    ));
    aistory_tests::harness::main()
}
