//! `steward db vacuum|reindex|prune`: through the daemon (its writer does the work, so ingestion is never
//! interrupted by a second writer), with a progress bar from `$/progress` on a terminal.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use steward_protocol as p;

use super::{DbCommand, fail, human_bytes, human_duration};
use crate::client::Client;

/// Runs a `steward db` subcommand.
pub fn run(home: &Path, cmd: DbCommand, json: bool) -> ExitCode {
    let (action, dry_run) = match cmd {
        DbCommand::Vacuum { dry_run } => (p::DbAction::Vacuum, dry_run),
        DbCommand::Reindex { dry_run } => (p::DbAction::Reindex, dry_run),
        DbCommand::Prune { dry_run } => (p::DbAction::Prune, dry_run),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(2, &e),
    };
    rt.block_on(async {
        let c = match Client::connect_or_start(home).await {
            Ok(c) => c,
            Err(e) => return fail(2, &e.to_string()),
        };
        let token = format!("cli-db-{}", std::process::id());
        let follow = super::progress::Follow::start(&c, &token);
        let res =
            c.request::<p::DbMaintain>(p::DbMaintainParams { action, dry_run, work_done_token: Some(token) }).await;
        follow.finish();
        let r = match res {
            Ok(r) => r,
            Err(e) => return fail(1, &e.to_string()),
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        } else {
            println!(
                "{}{} (store {} → {}, {})",
                r.summary,
                if r.dry_run { " (dry run)" } else { "" },
                human_bytes(r.file_bytes_before),
                human_bytes(r.file_bytes_after),
                human_duration(Duration::from_millis(r.duration_ms))
            );
        }
        ExitCode::SUCCESS
    })
}
