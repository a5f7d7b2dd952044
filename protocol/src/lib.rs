//! Steward's wire protocol: the one crate that knows the JSON shapes the daemon speaks.
//!
//! The transport is the LSP base protocol (`Content-Length` framing, JSON-RPC 2.0) on a Unix socket in a
//! private directory (see [`paths`]). Standard LSP methods (`initialize`, `shutdown`, …) work as usual; every
//! Steward-specific method and notification is declared in [`ext`] — that one file is mirrored by
//! `protocol/ts/steward-protocol.ts` (generated from it, checked by a test) and documented in `docs/api.md`
//! (whose recorded hash of `ext.rs` a test checks, so that code and docs cannot drift).
//!
//! Architecture invariant: this crate is plain data (serde only). It does not know the engine, the store or
//! tokio; the daemon converts its own types into these at the edge.
#![deny(missing_docs)]

pub mod ext;
pub mod paths;

pub use ext::*;
