//! Fan-out: `--attempts N` and `--each FILE [--jobs N]`, each task under its own background
//! supervisor, and many tasks at once on a small machine.

use serde_json::{Value, json};

use crate::common::TestEnv;

fn names(tasks: &Value) -> Vec<String> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn attempts_run_independent_tasks_named_after_one_base() {
    let env = TestEnv::new();
    env.steps(json!([{"bash": "echo \"$CMS_TASK\" > who.txt"}]));
    let tasks = env.task_ok(&["write who", "--attempts", "3", "-n", "try"]);
    assert_eq!(names(&tasks), ["try-1", "try-2", "try-3"]);
    for task in tasks.as_array().unwrap() {
        assert_eq!(task["status"], "completed", "{task:#}");
        let name = task["name"].as_str().unwrap();
        // Each attempt worked in its own worktree, on its own branch.
        assert_eq!(env.git(&["show", &format!("cms/{name}:who.txt")]), name);
    }
    // Another round without a name finds a base none of whose names is taken.
    let run = env.cms(&["task", "--json", "try", "--attempts", "2"]);
    run.success();
    assert_eq!(names(&run.json()), ["try-2-1", "try-2-2"]);
}

#[test]
fn attempts_are_listed_together_under_their_group_in_number_order() {
    let env = TestEnv::new();
    env.task_ok(&["before", "-n", "alone"]);
    env.cms(&["task", "fix the bug", "--attempts", "3", "-n", "fix"])
        .success();
    env.task_ok(&["after", "-n", "later"]);
    let run = env.cms(&["list"]);
    run.success();
    let names: Vec<String> = run
        .stdout
        .lines()
        .skip(1)
        // The total line closes the list.
        .take_while(|l| !l.starts_with("total "))
        .map(|l| {
            let indent = l.len() - l.trim_start().len();
            format!("{}{}", &l[..indent], l.split_whitespace().next().unwrap())
        })
        .collect();
    assert_eq!(
        names,
        ["alone", "fix", "  fix-1", "  fix-2", "  fix-3", "later"],
        "{}",
        run.stdout
    );
    let heading = run.stdout.lines().nth(2).unwrap();
    assert!(heading.contains("3 attempts"), "{heading}");
    assert!(heading.ends_with("fix the bug"), "{heading}");
    let task = env.cms(&["show", "fix-2", "--json"]).json();
    assert_eq!(
        task["attempt"],
        json!({"group": "fix", "number": 2, "of": 3})
    );
    assert_eq!(
        env.cms(&["show", "alone", "--json"]).json()["attempt"],
        Value::Null
    );
}

#[test]
fn each_runs_one_task_per_line_never_more_than_jobs_at_once() {
    let env = TestEnv::new();
    let running = env.root.join("running");
    let peaks = env.root.join("peaks");
    std::fs::create_dir_all(&running).unwrap();
    // Each session marks itself running, records how many are, and unmarks itself. The
    // bound holds whatever the timing: more than --jobs at once would show in the peaks.
    env.steps(json!([{"bash": format!(
        "mkdir {0}/$CMS_TASK && ls {0} | wc -l >> {1} && sleep 0.2 && rmdir {0}/$CMS_TASK",
        running.display(),
        peaks.display()
    )}]));
    let file = env.root.join("prompts.txt");
    std::fs::write(
        &file,
        "# the backlog\nfix the parser\n\nadd a test\nupdate the docs\nrename the flag\n",
    )
    .unwrap();
    let tasks = env.task_ok(&["--each", file.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(
        names(&tasks),
        [
            "fix-the-parser",
            "add-a-test",
            "update-the-docs",
            "rename-the-flag"
        ]
    );
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "completed")
    );
    let peak = std::fs::read_to_string(&peaks)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<u32>().unwrap())
        .max()
        .unwrap();
    assert!(peak <= 2, "{peak} tasks ran at once with --jobs 2");
}

#[test]
fn each_reads_prompts_from_stdin_and_refuses_an_empty_list() {
    let env = TestEnv::new();
    let run = env.cms_with_stdin(
        &["task", "--json", "--each", "-"],
        b"one thing\nanother thing\n",
    );
    run.success();
    let tasks = run.json();
    assert_eq!(names(&tasks), ["one-thing", "another-thing"]);
    let empty = env.root.join("empty.txt");
    std::fs::write(&empty, "# nothing yet\n\n").unwrap();
    env.cms(&["task", "--each", empty.to_str().unwrap()])
        .code(2)
        .one_line_error_with_hint("found no prompt");
}

#[test]
fn sixteen_detached_tasks_at_once_all_complete_with_whole_transcripts() {
    let env = TestEnv::new();
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": "echo \"$CMS_TASK\" > who.txt"},
    ]));
    let file = env.root.join("sixteen.txt");
    let prompts: Vec<String> = (1..=16).map(|i| format!("task number {i}")).collect();
    std::fs::write(&file, prompts.join("\n")).unwrap();
    let run = env.cms(&["task", "--json", "-d", "--each", file.to_str().unwrap()]);
    run.success();
    let started = names(&run.json());
    assert_eq!(started.len(), 16);
    let mut wait = vec!["wait", "--json", "--timeout", "5m"];
    wait.extend(started.iter().map(String::as_str));
    let waited = env.cms(&wait);
    waited.success();
    for task in waited.json().as_array().unwrap() {
        let name = task["name"].as_str().unwrap();
        assert_eq!(task["status"], "completed", "{task:#}");
        assert_eq!(env.git(&["show", &format!("cms/{name}:who.txt")]), name);
        // The whole transcript: its session's start, both tool calls and the result.
        let log = env.common_dir().join(format!("cms/logs/{name}.jsonl"));
        let lines: Vec<Value> = std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.first().unwrap()["subtype"], "init", "{name}");
        assert_eq!(lines.last().unwrap()["type"], "result", "{name}");
        let tools = lines
            .iter()
            .filter(|l| l["type"] == "assistant")
            .flat_map(|l| {
                l["message"]["content"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|b| b["type"] == "tool_use")
            .count();
        assert_eq!(tools, 2, "{name}");
    }
}

#[test]
fn ctrl_c_during_a_fan_out_stops_every_running_task_and_exits_130() {
    let env = TestEnv::new();
    let gate = env.root.join("never");
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"bash": format!("until [ -e {} ]; do sleep 0.02; done", gate.display())},
    ]));
    let fan = env.spawn_cms(&["task", "x", "--attempts", "2", "-n", "pair"]);
    // Both running, each past its first write.
    crate::common::eventually("both attempts to get going", || {
        let list = env.cms(&["list", "--json"]);
        let busy = list
            .json()
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter(|t| t["status"] == "running" && t["turns"].as_u64() >= Some(2))
                    .count()
            })
            .unwrap_or(0);
        busy == 2
    });
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(fan.id() as libc::pid_t, libc::SIGINT);
    }
    let run = crate::common::wait_bounded(fan, std::time::Duration::from_secs(60));
    run.code(130);
    for name in ["pair-1", "pair-2"] {
        let task = env.cms(&["show", name, "--json"]).json();
        assert_eq!(task["status"], "aborted", "{task:#}");
        assert_eq!(env.git(&["show", &format!("cms/{name}:a.txt")]), "a");
    }
}

#[test]
fn attempts_say_each_ending_as_it_comes_and_what_to_do_next() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let run = env.cms(&["task", "write a", "--attempts", "2", "-n", "try"]);
    run.success();
    for name in ["try-1", "try-2"] {
        // Said on stderr while the others may still run, and listed at the end on stdout.
        assert!(
            run.stderr.contains(&format!("{name} completed")),
            "{}",
            run.stderr
        );
        assert!(
            run.stdout.contains(&format!("cms diff {name}")),
            "{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("next:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("cms diff try-1 try-2"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("cms merge <TASK>"), "{}", run.stdout);
    assert!(
        run.stdout.contains("cms discard <TASK>..."),
        "{}",
        run.stdout
    );
}

#[test]
fn each_suggests_merging_the_tasks_that_completed_with_changes() {
    let env = TestEnv::new();
    env.steps(json!([{"write": {"path": "a.txt", "content": "a\n"}}]));
    let file = env.root.join("prompts.txt");
    std::fs::write(&file, "first thing\nsecond thing\n").unwrap();
    let run = env.cms(&["task", "--each", file.to_str().unwrap()]);
    run.success();
    assert!(
        run.stdout.contains("cms merge first-thing second-thing"),
        "{}",
        run.stdout
    );
    // --json prints the tasks only, as before.
    let json = env.cms(&["task", "--json", "--each", file.to_str().unwrap()]);
    json.success();
    assert!(json.json().is_array());
}

#[test]
fn diff_of_two_attempts_shows_one_against_the_other() {
    let env = TestEnv::new();
    env.steps(json!([{"bash": "echo \"$CMS_TASK\" > who.txt && echo same > same.txt"}]));
    env.task_ok(&["write who", "--attempts", "2", "-n", "try"]);
    let run = env.cms(&["diff", "try-1", "try-2"]);
    run.success();
    assert!(run.stdout.contains("-try-1"), "{}", run.stdout);
    assert!(run.stdout.contains("+try-2"), "{}", run.stdout);
    // What both attempts wrote alike is not part of the comparison.
    assert!(!run.stdout.contains("same.txt"), "{}", run.stdout);
    let json = env.cms(&["diff", "try-1", "try-2", "--json"]);
    json.success();
    let value = json.json();
    assert_eq!(value["task"], "try-1");
    assert_eq!(value["other"], "try-2");
    let files: Vec<&str> = value["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["who.txt"]);
    // A task against itself holds the same files: said, not an empty page.
    let same = env.cms(&["diff", "try-1", "try-1"]);
    same.success();
    assert!(same.stdout.is_empty(), "{}", same.stdout);
    assert!(
        same.stderr.contains("hold the same files"),
        "{}",
        same.stderr
    );
    // --base compares a task with its target, not with another task.
    env.cms(&["diff", "try-1", "try-2", "--base"]).code(2);
}
