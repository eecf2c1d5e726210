//! The store's files: records, archives, locks and atomic writes.

use crate::store::record::Safety;
use std::io::Write;

use super::{
    RECORD_VERSION, Store, StoreError, TaskName, TaskRecord, merge_lock_file, now_rfc3339,
};
use crate::vocab::Status;
use std::fs;
use std::path::{Path, PathBuf};

fn n(name: &str) -> TaskName {
    TaskName::parse(name).unwrap()
}

fn record(name: &str) -> TaskRecord {
    TaskRecord {
        version: RECORD_VERSION,
        name: n(name),
        status: Status::Running,
        prompt: "p".into(),
        branch: format!("cms/{name}"),
        worktree: "/w".into(),
        base: crate::git::Oid::from_str(&"0".repeat(40)).unwrap(),
        base_branch: Some("main".into()),
        session_id: None,
        model: None,
        preset: crate::vocab::Preset::Edit,
        cost_usd: 0.0,
        turns: 0,
        duration_ms: 0,
        response: None,
        tools_used: vec![],
        files_changed: vec![],
        permission_denials: vec![],
        safety: Safety::default(),
        error: None,
        head: None,
        merge: None,
        supervisor: None,
        attempt: None,
        remote: None,
        rebase: None,
        push: None,
        links: Vec::new(),
        pending: None,
        stopped_commands: Vec::new(),
        created_at: now_rfc3339(),
        updated_at: String::new(),
    }
}

#[test]
fn records_round_trip_and_update_under_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.create(&mut record("a")).unwrap();
    assert!(matches!(
        store.create(&mut record("a")),
        Err(StoreError::TaskExists { .. })
    ));
    let updated = store
        .update(&n("a"), |r| r.status = Status::Completed)
        .unwrap();
    assert_eq!(store.load(&n("a")).unwrap(), updated);
    assert!(matches!(
        store.load(&n("b")),
        Err(StoreError::UnknownTask { .. })
    ));
}

#[test]
fn a_corrupt_record_does_not_hide_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.create(&mut record("good")).unwrap();
    fs::write(store.record_path(&n("bad")), "{ not json").unwrap();
    let (records, errors) = store.list().unwrap();
    assert_eq!(records.len(), 1);
    assert!(matches!(errors[..], [StoreError::Corrupt { .. }]));
}

#[test]
fn records_from_a_newer_cms_are_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.create(&mut record("a")).unwrap();
    let text = fs::read_to_string(store.record_path(&n("a"))).unwrap();
    let text = text.replace(&format!("\"version\": {RECORD_VERSION}"), "\"version\": 99");
    fs::write(store.record_path(&n("a")), text).unwrap();
    assert!(matches!(
        store.load(&n("a")),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn archiving_a_closed_task_frees_its_name_and_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.create(&mut record("a")).unwrap();
    writeln!(store.open_log(&n("a")).unwrap(), "{{\"first\":1}}").unwrap();
    let supervisor_log = store.supervisor_log_path(&n("a"));
    fs::create_dir_all(supervisor_log.parent().unwrap()).unwrap();
    fs::write(&supervisor_log, "started\n").unwrap();
    // An open task is never archived.
    assert!(matches!(
        store.archive(&n("a")),
        Err(StoreError::TaskExists { .. })
    ));
    store
        .update(&n("a"), |r| r.status = Status::Discarded)
        .unwrap();
    let first = store.archive(&n("a")).unwrap();
    assert!(!store.exists(&n("a")));
    let mut again = record("a");
    again.prompt = "second".into();
    store.create(&mut again).unwrap();
    store
        .update(&n("a"), |r| r.status = Status::Discarded)
        .unwrap();
    let second = store.archive(&n("a")).unwrap();
    assert_ne!(first, second);
    let (archived, errors) = store.archived().unwrap();
    assert!(errors.is_empty());
    let mut prompts: Vec<_> = archived.iter().map(|r| r.prompt.as_str()).collect();
    prompts.sort();
    assert_eq!(prompts, ["p", "second"]);
    let log = fs::read_to_string(first.with_extension("jsonl")).unwrap();
    assert_eq!(log, "{\"first\":1}\n");
    // The detached supervisor's log goes with it: the next task of that name starts its own.
    assert!(!supervisor_log.exists());
    let kept = fs::read_to_string(first.with_extension("supervisor.log")).unwrap();
    assert_eq!(kept, "started\n");
    let (with_files, _) = store.archived_with_files().unwrap();
    assert!(
        with_files
            .iter()
            .any(|a| a.files.contains(&first.with_extension("supervisor.log")))
    );
    assert_eq!(store.list().unwrap().0, []);
}

#[test]
fn remove_leaves_no_file_of_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.create(&mut record("a")).unwrap();
    writeln!(store.open_log(&n("a")).unwrap(), "{{}}").unwrap();
    store.remove(&n("a")).unwrap();
    let leftovers: Vec<_> = walk(store.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/a."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn discard_marks_round_trip_and_task_files_are_named_after_their_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert_eq!(store.discarding(), []);
    store.mark_discarding(&n("a"), "then", true).unwrap();
    let marks = store.discarding();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].name.as_str(), marks[0].created_at.as_str()),
        ("a", "then")
    );
    assert!(marks[0].even_off_branch);
    store.clear_discarding(&n("a")).unwrap();
    store.clear_discarding(&n("a")).unwrap();
    assert_eq!(store.discarding(), []);

    store.create(&mut record("b")).unwrap();
    writeln!(store.open_log(&n("b")).unwrap(), "{{}}").unwrap();
    store.open_stderr_log(&n("c.d")).unwrap();
    fs::write(store.root().join("logs/not a task.jsonl"), "").unwrap();
    let mut files: Vec<(String, String)> = store
        .task_files()
        .into_iter()
        .map(|(name, path)| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (name.to_string(), file)
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("b".to_owned(), "b.jsonl".to_owned()),
            ("b".to_owned(), "task-b.lock".to_owned()),
            ("c.d".to_owned(), "c.d.stderr".to_owned()),
        ]
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn merge_locks_are_one_safe_file_per_branch() {
    assert_eq!(merge_lock_file("main"), "merge-main.lock");
    assert_eq!(merge_lock_file("feat/x"), "merge-feat%2Fx.lock");
    // `a/b` and `a%2Fb` are different branches, so they must not share a lock.
    assert_ne!(merge_lock_file("a/b"), merge_lock_file("a%2Fb"));
    assert_ne!(merge_lock_file("../up"), "merge-../up.lock");
    let long_a = format!("{}a", "x/".repeat(200));
    let long_b = format!("{}b", "x/".repeat(200));
    let (a, b) = (merge_lock_file(&long_a), merge_lock_file(&long_b));
    assert_ne!(a, b);
    assert!(a.len() < 255 && !a.contains('/'), "{a}");
}
