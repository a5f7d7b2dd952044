//! Steward's module framework.
//!
//! - [`config`]: the stack file (`steward.toml`) → an effective [`config::Stack`], with every error
//!   located (file, line, column, key) — the loader is the only code that reads TOML.
//! - [`graph`]: dependency order (pure).
//! - [`lifecycle`]: the module state enum, its one transition function, and the event types.
//! - [`core`]: the supervisor's decisions (start/stop ordering, restart and backoff, health gating, profile
//!   diffs) as pure functions over data and time. No I/O.
//! - [`process`], [`probe`]: the edge — spawning process groups, capturing output, signals, health checks.
//! - [`engine`]: the async driver that feeds real-world inputs to the core and executes its actions.
//! - [`metrics`]: machine CPU, memory and disk readings for the daemon's sampler.
//! - [`store`]: logs, events, runs and notes in SQLite (the memory).
//! - [`backup`]: the content-addressed backup repository, the store's online copy, retention.
#![deny(missing_docs)]

pub mod backup;
pub mod config;
pub mod core;
pub mod engine;
pub mod graph;
pub mod lifecycle;
pub mod metrics;
pub mod probe;
pub mod process;
pub mod store;
