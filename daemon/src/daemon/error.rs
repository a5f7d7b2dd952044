//! Errors of request handlers, as JSON-RPC errors.

use std::borrow::Cow;

use serde_json::{Value, json};
use steward_framework::config::Diagnostic;
use steward_framework::store::StoreError;
use steward_protocol as p;
use tower_lsp_server::jsonrpc;

use super::convert;

/// A handler's failure: a JSON-RPC error code, a message for people, and data for programs.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// JSON-RPC error code (`-32602` or one of `steward_protocol::ERROR_*`).
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// Details.
    pub data: Option<Value>,
}

impl ApiError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), data: None }
    }

    /// `-32602`.
    pub fn invalid_params(message: impl Into<String>) -> ApiError {
        ApiError::new(-32602, message)
    }

    /// The stack file does not load.
    pub fn config(path: &str, diags: &[Diagnostic]) -> ApiError {
        let data =
            p::ConfigErrorData { path: path.to_string(), diagnostics: diags.iter().map(convert::diagnostic).collect() };
        let first = diags.first().map(|d| d.message.clone()).unwrap_or_default();
        ApiError {
            code: p::ERROR_CONFIG_INVALID,
            message: format!("{path}: {} error{} ({first})", diags.len(), if diags.len() == 1 { "" } else { "s" }),
            data: serde_json::to_value(data).ok(),
        }
    }

    /// The store failed.
    pub fn store(e: StoreError) -> ApiError {
        ApiError::new(p::ERROR_STORE, e.to_string())
    }

    /// No such module.
    pub fn module_not_found(project: &str, module: &str, available: Vec<String>) -> ApiError {
        ApiError {
            code: p::ERROR_MODULE_NOT_FOUND,
            message: format!("{project} has no module `{module}` (modules: {})", available.join(", ")),
            data: Some(json!({ "available": available })),
        }
    }

    /// The daemon is stopping.
    pub fn shutting_down() -> ApiError {
        ApiError::new(p::ERROR_SHUTTING_DOWN, "the daemon is shutting down")
    }

    /// A task panicked or was cancelled.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(-32603, message)
    }
}

impl From<ApiError> for jsonrpc::Error {
    fn from(e: ApiError) -> jsonrpc::Error {
        jsonrpc::Error { code: jsonrpc::ErrorCode::from(e.code), message: Cow::Owned(e.message), data: e.data }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::store(e)
    }
}
