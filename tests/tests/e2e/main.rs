//! End-to-end tests, one binary: each module is a scenario run against a real
//! broker (in process, or `quiver serve` as a child) through the shared harness
//! in `quiver_tests`. One binary links the broker once instead of once per file.

mod cli;
mod cli_everyday;
mod cli_transforms;
mod client_errors;
mod crash;
mod damaged_storage;
mod errors;
mod fetch_modules;
mod full_disk;
mod groups;
mod kafka;
mod modules;
mod newcomer;
mod operator;
mod produce_consume;
mod raw_frames;
mod readme;
mod reconnect;
mod retention;
mod slow_clients;
mod tls;
mod transforms;
mod transport;
mod wasm_hardening;
