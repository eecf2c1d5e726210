//! `cms worker` with the real Claude Code CLI against the fake Anthropic API.

use serde_json::{Value, json};

use super::{out_files, out_record, remote_refs, run_worker, spec, submit, wire, worker_env};
use crate::common::TestEnv;

/// A worker repository whose jobs run the real claude against a fake API of their own;
/// `None` when the real CLI tests are skipped.
fn real_worker_env(
    test: &str,
) -> Option<(crate::common::fake_api::FakeApi, TestEnv, String, String)> {
    use crate::common::real::{claude_env, real_claude};
    let claude = real_claude(test)?;
    let api = crate::common::fake_api::FakeApi::start();
    let (mut env, url) = worker_env();
    // Every process of the session inside the outer boundary, as on a real worker.
    env.set_env("CMS_BOUNDARY", "on");
    for (key, value) in claude_env(&api, &env.home.join(".claude")) {
        env.set_env(key, &value);
    }
    Some((api, env, url, claude.display().to_string()))
}

#[test]
fn real_claude_completes_a_task_through_cms_worker() {
    use crate::common::fake_api::Reply;
    let Some((api, env, url, claude)) =
        real_worker_env("real_claude_completes_a_task_through_cms_worker")
    else {
        return;
    };
    // Replies go by the assistant messages a request already holds: the follow-up's come
    // after the first session's only if it resumed that conversation.
    api.route(
        "[worker]",
        vec![
            Reply::write("made.txt", "by the real claude\n"),
            Reply::text("Made it."),
            Reply::write("more.txt", "followed up\n"),
            Reply::text("Followed up."),
        ],
    );
    let mut spec = spec(&env, "real");
    spec["prompt"] = json!("[worker] make the file");
    spec["message"] = json!("[worker] make the file");
    spec["claude"] = json!(claude);
    let job = submit(&env, &url, &spec, None);
    let run = run_worker(&env, &url, &job);
    run.success();
    let lines = wire(&run);
    assert_eq!(
        lines.last().unwrap()["end"],
        json!({"status": "completed", "error": null}),
        "{}",
        run.stderr
    );
    let claude_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| l["claude"].as_str())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(claude_lines[0]["subtype"], "init");
    assert_eq!(claude_lines.last().unwrap()["type"], "result");
    let out = out_files(&env, &url, &job);
    let record: Value = serde_json::from_slice(&out["record.json"]).unwrap();
    assert_eq!(record["response"], "Made it.");
    assert_eq!(record["safety"]["sandboxed"], true);
    let session_id = record["session_id"].as_str().unwrap().to_owned();
    let session = String::from_utf8(out["session.jsonl"].clone()).unwrap();
    assert!(session.contains(&session_id));
    let branch = remote_refs(&env, &url, &job)["branch"].clone();
    assert_eq!(
        env.git(&["show", &format!("{branch}:made.txt")]),
        "by the real claude"
    );

    // A follow-up on a fresh scratch repository and worktree resumes that conversation from
    // the session file alone: the API gets the first session's messages, and its replies go
    // on from there (claude says "No conversation found" and fails otherwise).
    let mut follow_up = spec.clone();
    follow_up["message"] = json!("now one more file");
    follow_up["start"] = json!(branch);
    follow_up["resume"] = json!(session_id);
    follow_up["record"] = record;
    let job = submit(&env, &url, &follow_up, Some(&out["session.jsonl"]));
    let run = run_worker(&env, &url, &job);
    run.success();
    assert_eq!(
        wire(&run).last().unwrap()["end"]["status"],
        "completed",
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let after = out_record(&env, &url, &job);
    assert_eq!(after["response"], "Followed up.");
    assert_eq!(after["session_id"], session_id.as_str());
    let tip = remote_refs(&env, &url, &job)["branch"].clone();
    assert_eq!(
        env.git(&["show", &format!("{tip}:more.txt")]),
        "followed up"
    );
    assert_eq!(
        env.git(&["show", &format!("{tip}:made.txt")]),
        "by the real claude"
    );
}
