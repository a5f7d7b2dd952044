//! The wire shapes the TypeScript definitions and docs promise: camelCase names, tagged events, defaults.

use serde_json::json;
use steward_protocol::*;

#[test]
fn events_are_flat_and_tagged_by_kind() {
    let ev = EventParams {
        project: "/p/steward.toml".into(),
        project_name: "demo".into(),
        at_ms: 5,
        detail: EventDetail::RunEnded {
            module: "worker".into(),
            run: 3,
            exit_code: Some(1),
            signal: None,
            reason: "exited with status 1".into(),
        },
    };
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(
        v,
        json!({"project": "/p/steward.toml", "projectName": "demo", "atMs": 5, "kind": "runEnded", "module": "worker",
               "run": 3, "exitCode": 1, "reason": "exited with status 1"})
    );
    assert_eq!(serde_json::from_value::<EventParams>(v).unwrap(), ev);
    let opened = serde_json::to_value(EventDetail::ProjectOpened {}).unwrap();
    assert_eq!(opened, json!({"kind": "projectOpened"}));
}

#[test]
fn params_take_their_defaults() {
    let up: UpParams = serde_json::from_value(json!({"project": "demo"})).unwrap();
    assert!(up.wait);
    assert_eq!(up.timeout_ms, None);
    let m: ModuleParams = serde_json::from_value(json!({"project": "demo", "module": "api", "extra": 1})).unwrap();
    assert!(!m.wait, "unknown fields are ignored, wait defaults to false");
    let _: StatusParams = serde_json::from_value(json!({})).unwrap();
    let _: DaemonStopParams = serde_json::from_value(json!({})).unwrap();
    let e = serde_json::from_value::<ModuleParams>(json!({"module": "api"})).unwrap_err();
    assert!(e.to_string().contains("`project`"), "{e}");
}

#[test]
fn module_status_is_camel_case() {
    let m = ModuleStatus {
        name: "db".into(),
        state: ModuleState::Running,
        wanted: true,
        pid: Some(7),
        run: Some(1),
        health: Some(Health::Healthy),
        restarts: 0,
        state_for_ms: 10,
        last_exit: None,
        waiting_for: vec![],
        reason: None,
        exit_code: None,
        signal: None,
        retry_in_ms: None,
        attempt: None,
        cpu_percent: None,
        rss_bytes: None,
    };
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"name": "db", "state": "running", "wanted": true, "pid": 7, "run": 1, "health": "healthy",
               "restarts": 0, "stateForMs": 10, "waitingFor": []})
    );
}

#[test]
fn progress_is_lsp_work_done_progress() {
    let begin = ProgressParams {
        token: "t1".into(),
        value: WorkDoneProgress::Begin {
            title: "Backup".into(),
            cancellable: false,
            message: None,
            percentage: Some(0),
        },
    };
    assert_eq!(
        serde_json::to_value(&begin).unwrap(),
        json!({"token": "t1", "value": {"kind": "begin", "title": "Backup", "cancellable": false, "percentage": 0}})
    );
    let report: ProgressParams =
        serde_json::from_value(json!({"token": "t1", "value": {"kind": "report", "percentage": 40}})).unwrap();
    assert_eq!(report.value, WorkDoneProgress::Report { message: None, percentage: Some(40) });
    assert_eq!(
        serde_json::to_value(WorkDoneProgress::End { message: Some("done".into()) }).unwrap(),
        json!({"kind": "end", "message": "done"})
    );
    let p: DbMaintainParams = serde_json::from_value(json!({"action": "reindex"})).unwrap();
    assert_eq!((p.action, p.dry_run), (DbAction::Reindex, false));
    let e = serde_json::from_value::<DbMaintainParams>(json!({"action": "defrag"})).unwrap_err();
    assert!(e.to_string().contains("defrag"), "{e}");
    let done = EventDetail::BackupFailed { scheduled: true, error: "disk full".into() };
    assert_eq!(
        serde_json::to_value(done).unwrap(),
        json!({"kind": "backupFailed", "scheduled": true, "error": "disk full"})
    );
}
