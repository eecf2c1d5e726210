//! `cms worker`, what a runner's job runs on a worker machine, run here as a process against a
//! bare repository standing in for the runner's git remote: the job's start and spec are
//! pushed with cms's own transport first, as the local side pushes them. The worker runs the
//! task as a local task runs (the fake claude, the sandbox required, limits and protected
//! paths), prints wire lines, obeys the control ref and SIGTERM, and pushes its results.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use cms::transport::{
    fetch, files_commit, ls_remote, new_job_id, parse_wire_line, push, read_commit_files,
};

use crate::common::{Background, FAKE_CLAUDE, LIMIT, Run, TestEnv, eventually, process_ended};

mod real;
mod stop;

/// A test repository with a bare repository beside it as the runner's remote, and a
/// TMPDIR of its own (where the worker makes its scratch repository).
fn worker_env() -> (TestEnv, String) {
    let mut env = TestEnv::new();
    env.private_tmpdir();
    env.git_in(&env.root, &["init", "-q", "--bare", "remote.git"]);
    let url = env.root.join("remote.git").display().to_string();
    (env, url)
}

fn head(env: &TestEnv) -> String {
    env.git(&["rev-parse", "HEAD"])
}

/// A new task's spec, as the local side writes it: starting at HEAD with the defaults' limits.
fn spec(env: &TestEnv, task: &str) -> Value {
    json!({
        "version": 1,
        "task": task,
        "prompt": "do the work",
        "message": "do the work",
        "base": head(env),
        "start": head(env),
        "preset": "edit",
        "limits": {"max_cost_usd": 2.0, "max_turns": 50, "max_duration_ms": 300000},
        "protected": [],
        "hosts": [],
        "ask": false,
        "claude": FAKE_CLAUDE,
    })
}

fn job_ref(job: &str, which: &str) -> String {
    format!("refs/cms/jobs/{job}/{which}")
}

/// Pushes `files` as the job's `in` commit and `start` as its start, as the local side does.
fn submit_files(env: &TestEnv, url: &str, job: &str, start: &str, files: &[(&str, &[u8])]) {
    let input = files_commit(&env.repo, files, &[]).unwrap();
    push(
        &env.repo,
        url,
        &[
            (start, &job_ref(job, "start")),
            (&input.to_string(), &job_ref(job, "in")),
        ],
        true,
    )
    .unwrap();
}

/// Submits `spec` (and a follow-up's session file) for a new job; returns the job's id.
fn submit(env: &TestEnv, url: &str, spec: &Value, session: Option<&[u8]>) -> String {
    let job = new_job_id(spec["task"].as_str().unwrap());
    let text = serde_json::to_vec(spec).unwrap();
    let mut files: Vec<(&str, &[u8])> = vec![("spec.json", &text)];
    if let Some(session) = session {
        files.push(("session.jsonl", session));
    }
    submit_files(env, url, &job, spec["start"].as_str().unwrap(), &files);
    job
}

/// Writes the job's control, as the local side does for `cms allow`, `deny` and `abort`.
fn control(env: &TestEnv, url: &str, job: &str, control: &Value) {
    let text = serde_json::to_vec(control).unwrap();
    let commit = files_commit(&env.repo, &[("control.json", &text)], &[]).unwrap();
    push(
        &env.repo,
        url,
        &[(&commit.to_string(), &job_ref(job, "control"))],
        true,
    )
    .unwrap();
}

fn spawn_worker(env: &TestEnv, url: &str, job: &str) -> Background {
    let mut cmd = env.cms_command(&env.root, &["worker", "--remote", url, "--job", job]);
    Background::spawn(&mut cmd)
}

fn run_worker(env: &TestEnv, url: &str, job: &str) -> Run {
    crate::common::wait_bounded(spawn_worker(env, url, job), LIMIT)
}

/// Every line the worker printed, each of which must be a wire line.
fn wire(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| {
            parse_wire_line(line)
                .unwrap_or_else(|| panic!("not a wire line: {line:?}\nstderr:\n{}", run.stderr))
        })
        .collect()
}

/// The job's refs at the remote, by their last component.
fn remote_refs(env: &TestEnv, url: &str, job: &str) -> BTreeMap<String, String> {
    ls_remote(Some(&env.repo), url, &format!("refs/cms/jobs/{job}/*"))
        .unwrap()
        .into_iter()
        .map(|(oid, name)| (name.rsplit('/').next().unwrap().to_owned(), oid.to_string()))
        .collect()
}

/// The files of the job's `out` commit at the remote.
fn out_files(env: &TestEnv, url: &str, job: &str) -> BTreeMap<String, Vec<u8>> {
    let refs = format!("+refs/cms/jobs/{job}/*:refs/cms/jobs/{job}/*");
    fetch(&env.repo, url, &[&refs]).unwrap();
    // As fetched: the worker may push a newer one meanwhile.
    let out = env.git(&["rev-parse", &job_ref(job, "out")]);
    read_commit_files(&env.repo, git2::Oid::from_str(&out).unwrap()).unwrap()
}

fn out_record(env: &TestEnv, url: &str, job: &str) -> Value {
    serde_json::from_slice(&out_files(env, url, job)["record.json"]).unwrap()
}

/// The pids of every fake claude started so far.
fn claude_pids(env: &TestEnv) -> Vec<u64> {
    env.claude_invocations()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap())
        .collect()
}

/// The worker's scratch repositories left in its TMPDIR.
fn scratch_left(env: &TestEnv) -> Vec<String> {
    std::fs::read_dir(env.root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("cms-worker-"))
        .collect()
}

#[test]
fn a_worker_runs_the_jobs_task_and_pushes_its_branch_and_results() {
    let (env, url) = worker_env();
    env.steps(json!([
        {"text": "Writing it."},
        {"write": {"path": "made.txt", "content": "by the worker\n"}},
    ]));
    let job = submit(&env, &url, &spec(&env, "remote-work"), None);
    let run = run_worker(&env, &url, &job);
    run.success();
    let lines = wire(&run);

    // The last line says how it ended, after the line saying what was pushed.
    let n = lines.len();
    assert_eq!(
        lines[n - 1],
        json!({"end": {"status": "completed", "error": null}})
    );
    let pushed = &lines[n - 2]["pushed"];
    let refs = remote_refs(&env, &url, &job);
    assert_eq!(pushed["out"], refs["out"]);
    assert_eq!(pushed["branch"], refs["branch"]);
    assert!(!lines.iter().any(|l| l.get("error").is_some()), "{lines:?}");

    // The branch is the task's tip after the engine's finish commit, on top of the start.
    let branch = refs["branch"].clone();
    let out = out_files(&env, &url, &job);
    assert_eq!(
        env.git(&["show", &format!("{branch}:made.txt")]),
        "by the worker"
    );
    assert_eq!(env.git(&["rev-parse", &format!("{branch}^")]), head(&env));
    let message = env.git(&["log", "-1", "--format=%B", &branch]);
    assert!(message.contains("Cms-Task: remote-work"), "{message}");

    // The record is the worker's: completed, sandboxed, its change from the spec's base.
    let record: Value = serde_json::from_slice(&out["record.json"]).unwrap();
    assert_eq!(record["status"], "completed");
    assert_eq!(record["name"], "remote-work");
    assert_eq!(record["branch"], "cms/remote-work");
    assert_eq!(record["base"], head(&env));
    assert_eq!(record["head"], branch);
    assert_eq!(record["safety"]["sandboxed"], true);
    assert_eq!(record["files_changed"][0]["path"], "made.txt");
    assert_eq!(record["supervisor"], Value::Null);

    // The claude lines are claude's transcript, whole and in order; the records follow the
    // task to its end.
    let claude: Vec<&str> = lines.iter().filter_map(|l| l["claude"].as_str()).collect();
    let log = String::from_utf8(out["log.jsonl"].clone()).unwrap();
    assert_eq!(claude, log.lines().collect::<Vec<_>>());
    assert!(claude.len() >= 4, "{claude:?}");
    let first: Value = serde_json::from_str(claude[0]).unwrap();
    assert_eq!(first["subtype"], "init");
    let last: Value = serde_json::from_str(claude.last().unwrap()).unwrap();
    assert_eq!(last["type"], "result");
    let statuses: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["record"]["status"].as_str())
        .collect();
    assert_eq!(statuses.last(), Some(&"completed"));
    assert!(
        statuses
            .iter()
            .all(|s| ["running", "completed"].contains(s)),
        "{statuses:?}"
    );

    // claude's session file travels with the results, for a follow-up on any worker.
    let session = String::from_utf8(out["session.jsonl"].clone()).unwrap();
    let session_id = record["session_id"].as_str().unwrap();
    assert!(session.contains(session_id), "{session}");
    assert!(out.contains_key("stderr"));

    // The session ran sandboxed, in a worktree of the worker's own, and nothing is left.
    let settings = env.last_claude_arg("--settings").unwrap();
    let settings: Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(settings["sandbox"]["enabled"], true, "{settings:#}");
    assert!(claude_pids(&env).into_iter().all(process_ended));
    assert_eq!(scratch_left(&env), Vec::<String>::new());
}

#[test]
fn a_prompt_waits_until_the_control_ref_answers_it_and_the_task_goes_on() {
    let (env, url) = worker_env();
    env.steps(json!([{"ask": {"bash": "echo ok > ran.txt"}}]));
    let mut spec = spec(&env, "asking");
    // In `review`, Bash is a tool claude must ask for.
    spec["preset"] = json!("review");
    spec["ask"] = json!(true);
    let job = submit(&env, &url, &spec, None);
    let worker = spawn_worker(&env, &url, &job);

    // The waiting record reaches the remote (a status change), with the prompt in it.
    let pending = eventually("the worker to push its waiting record", || {
        let record = remote_refs(&env, &url, &job)
            .contains_key("out")
            .then(|| out_record(&env, &url, &job));
        match record {
            Some(record) if record["status"] == "waiting" => Ok(record["pending"].clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(pending["tool_name"], "Bash");
    assert_eq!(pending["input"]["command"], "echo ok > ran.txt");
    control(
        &env,
        &url,
        &job,
        &json!({"stop": false, "answers": [{
            "request_id": pending["request_id"], "allow": true, "always": false,
            "message": null, "by": "cms allow (pid 1)",
        }]}),
    );
    let run = crate::common::wait_bounded(worker, LIMIT);
    run.success();
    let lines = wire(&run);
    assert_eq!(lines.last().unwrap()["end"]["status"], "completed");
    // The job's log showed the wait and then its end (the record is read every 100 ms, so
    // the short run after the answer may fall between two reads).
    let statuses: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["record"]["status"].as_str())
        .collect();
    let waiting = statuses.iter().position(|s| *s == "waiting").unwrap();
    assert_eq!(statuses.last(), Some(&"completed"), "{statuses:?}");
    assert!(waiting < statuses.len() - 1, "{statuses:?}");
    let shown = lines
        .iter()
        .find(|l| l["record"]["status"] == "waiting")
        .unwrap();
    assert_eq!(
        shown["record"]["pending"]["request_id"],
        pending["request_id"]
    );

    let record = out_record(&env, &url, &job);
    assert_eq!(record["status"], "completed");
    // The worker's own fetch of the control ref is no change the task made.
    assert_eq!(record["safety"]["warnings"], json!([]), "{record:#}");
    assert_eq!(record["safety"]["violations"], json!([]), "{record:#}");
    assert_eq!(record["safety"]["answered"][0]["by"], "cms allow (pid 1)");
    assert_eq!(record["safety"]["answered"][0]["allow"], true);
    let branch = remote_refs(&env, &url, &job)["branch"].clone();
    assert_eq!(env.git(&["show", &format!("{branch}:ran.txt")]), "ok");
}

#[test]
fn a_follow_up_resumes_the_session_from_the_shipped_session_file() {
    let (env, url) = worker_env();
    env.script(json!({"turns": [
        {"steps": [{"write": {"path": "one.txt", "content": "1\n"}}], "result": "first"},
        {"steps": [{"write": {"path": "two.txt", "content": "2\n"}}], "result": "second"},
    ]}));
    let first_job = submit(&env, &url, &spec(&env, "again"), None);
    run_worker(&env, &url, &first_job).success();
    let first = out_files(&env, &url, &first_job);
    let record: Value = serde_json::from_slice(&first["record.json"]).unwrap();
    let session_id = record["session_id"].as_str().unwrap().to_owned();
    let tip = remote_refs(&env, &url, &first_job)["branch"].clone();

    // The follow-up runs on a worker that has never seen the task: the scratch repository
    // and the worktree are new, only the session file comes along.
    env.script(json!({"resume_offset": 1, "turns": [
        {"steps": [{"write": {"path": "one.txt", "content": "1\n"}}], "result": "first"},
        {"steps": [{"write": {"path": "two.txt", "content": "2\n"}}], "result": "second"},
    ]}));
    let mut follow_up = spec(&env, "again");
    follow_up["message"] = json!("now the second file");
    follow_up["start"] = json!(tip);
    follow_up["resume"] = json!(session_id);
    follow_up["record"] = record.clone();
    follow_up["limits"]["max_turns"] = json!(50);
    let job = submit(&env, &url, &follow_up, Some(&first["session.jsonl"]));
    let run = run_worker(&env, &url, &job);
    run.success();
    assert_eq!(wire(&run).last().unwrap()["end"]["status"], "completed");

    assert_eq!(
        env.last_claude_arg("--resume").as_deref(),
        Some(session_id.as_str())
    );
    let out = out_files(&env, &url, &job);
    let after: Value = serde_json::from_slice(&out["record.json"]).unwrap();
    assert_eq!(after["session_id"], session_id.as_str());
    assert_eq!(after["response"], "second");
    // Counts carry over the sessions, as a local follow-up's do.
    assert_eq!(
        after["turns"].as_u64().unwrap(),
        record["turns"].as_u64().unwrap() * 2
    );
    assert!(after["cost_usd"].as_f64().unwrap() > record["cost_usd"].as_f64().unwrap());
    // claude appended to the session file it was given: the whole conversation comes back.
    let before = &first["session.jsonl"];
    let session = &out["session.jsonl"];
    assert!(session.len() > before.len() && session.starts_with(before));
    let branch = remote_refs(&env, &url, &job)["branch"].clone();
    assert_eq!(env.git(&["rev-parse", &format!("{branch}^")]), tip);
    assert_eq!(env.git(&["show", &format!("{branch}:two.txt")]), "2");
    let changed: Vec<&str> = after["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["one.txt", "two.txt"]);
}

/// The worker refused the job: one error line and exit 1, and nothing pushed.
#[track_caller]
fn assert_refused(env: &TestEnv, url: &str, job: &str, needle: &str) {
    let run = run_worker(env, url, job);
    run.code(1).one_line_error_with_hint(needle);
    let lines = wire(&run);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let error = lines[0]["error"].as_str().unwrap();
    assert!(error.contains(needle), "{error}");
    let refs = remote_refs(env, url, job);
    assert!(
        !refs.contains_key("out") && !refs.contains_key("branch"),
        "{refs:?}"
    );
    assert!(claude_pids(env).is_empty());
    assert_eq!(scratch_left(env), Vec::<String>::new());
}

#[test]
fn a_job_the_worker_cannot_run_is_one_clear_error_and_pushes_nothing() {
    let (env, url) = worker_env();
    let start = head(&env);
    let job = new_job_id("t");
    submit_files(&env, &url, &job, &start, &[("other.txt", b"x")]);
    assert_refused(&env, &url, &job, "has no spec.json");

    let job = new_job_id("t");
    submit_files(
        &env,
        &url,
        &job,
        &start,
        &[("spec.json", b"{\"version\": 1, ")],
    );
    assert_refused(&env, &url, &job, "spec.json is not JSON");

    let job = new_job_id("t");
    submit_files(
        &env,
        &url,
        &job,
        &start,
        &[("spec.json", b"{\"version\": 1}")],
    );
    assert_refused(&env, &url, &job, "spec.json is not a job spec");

    let mut newer = spec(&env, "t");
    newer["version"] = json!(2);
    let job = submit(&env, &url, &newer, None);
    assert_refused(&env, &url, &job, "version 2");

    // A claude that is not there, or that ends before it starts a session.
    let mut missing = spec(&env, "t");
    missing["claude"] = json!("no-such-claude-anywhere");
    let job = submit(&env, &url, &missing, None);
    assert_refused(&env, &url, &job, "not found");
    let mut failing = spec(&env, "t");
    failing["claude"] = json!("false");
    let job = submit(&env, &url, &failing, None);
    assert_refused(&env, &url, &job, "before starting a session");

    // A job never submitted: nothing to fetch.
    assert_refused(&env, &url, &new_job_id("t"), "could not fetch job");
}

#[test]
fn a_protected_path_and_the_turn_limit_hold_on_the_worker() {
    let (env, url) = worker_env();
    env.steps(json!([{"bash": "echo leaked > secret.txt"}]));
    let mut protected = spec(&env, "protected");
    protected["protected"] = json!(["secret.txt"]);
    let job = submit(&env, &url, &protected, None);
    let run = run_worker(&env, &url, &job);
    run.success();
    let end = wire(&run).last().unwrap()["end"].clone();
    assert_eq!(end["status"], "protected_path", "{end}");
    let record = out_record(&env, &url, &job);
    assert_eq!(record["safety"]["violations"][0]["path"], "secret.txt");

    env.steps(json!([
        {"write": {"path": "one.txt", "content": "1\n"}},
        {"write": {"path": "two.txt", "content": "2\n"}},
        {"write": {"path": "three.txt", "content": "3\n"}},
        {"write": {"path": "four.txt", "content": "4\n"}},
    ]));
    let mut limited = spec(&env, "limited");
    limited["limits"]["max_turns"] = json!(2);
    let job = submit(&env, &url, &limited, None);
    let run = run_worker(&env, &url, &job);
    run.success();
    assert_eq!(
        wire(&run).last().unwrap()["end"]["status"],
        "turns_exceeded"
    );
    assert_eq!(out_record(&env, &url, &job)["status"], "turns_exceeded");
    let branch = remote_refs(&env, &url, &job)["branch"].clone();
    let files = env.git(&["ls-tree", "--name-only", &branch]);
    assert!(
        files.contains("one.txt") && !files.contains("four.txt"),
        "{files}"
    );
}
