//! What each tool does, as blocking calls into `task/` (as `cli/` makes them), each returning
//! the command line's `--json` object or its error.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::args::*;
use super::caps;
use crate::error::{CommandError, ErrorKind};
use crate::git::{self, merge::MergeMode};
use crate::report;
use crate::store::{PermissionAnswer, TaskName, TaskRecord};
use crate::task::{self, ContinueOptions, MergeOptions, Started, TaskOptions};
use crate::workspace::Workspace;

/// How long `task_wait` waits when no timeout is given: below the patience of MCP clients,
/// which give up on a silent call, and a parent can always wait again.
const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// How long `task_answer` waits for the supervisor to pass the answer on.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

/// The patch `task_diff` returns, unless asked for more or less: about what an agent's
/// context takes in comfortably.
const DEFAULT_PATCH_BYTES: usize = 40_000;

/// The server's state: where it runs and the tasks it started.
pub struct Tools {
    /// The directory `cms mcp` was started in; every call opens the repository there.
    cwd: PathBuf,
    /// Tasks this server started or continued, for `[mcp] max_running`. Held across a start
    /// so two starts cannot both pass the count.
    ours: Mutex<Vec<TaskName>>,
}

/// The caller of a tool that may wait: where its progress goes, and whether it still waits
/// for the answer (it cancelled the call, or left).
pub struct Caller<'a> {
    pub progress: &'a (dyn Fn(String) + Sync),
    pub gone: &'a (dyn Fn() -> bool + Sync),
}

impl Tools {
    pub fn new(cwd: PathBuf) -> Tools {
        Tools {
            cwd,
            ours: Mutex::new(Vec::new()),
        }
    }

    /// The repository, settled as every command finds it (dead supervisors reconciled,
    /// interrupted merges finished).
    pub fn workspace(&self) -> Result<Workspace, CommandError> {
        let ws = Workspace::discover(&self.cwd)?;
        // As every cms command does; stderr is the server's log, not the protocol.
        for line in task::settle(&ws) {
            eprintln!("cms mcp: {line}");
        }
        Ok(ws)
    }

    pub fn start(&self, args: StartArgs, caller: &Caller) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let name = args.name.as_deref().map(task_name).transpose()?;
        let config = ws.config(ws.repo.head().ok().map(|h| h.oid()))?;
        let limits = caps::limits(&config.mcp, &config.limits, &args.limits)?;
        let preset = caps::preset(&config.mcp, config.preset, args.preset.map(Into::into))?;
        for glob in &args.protect {
            crate::safety::validate_glob(glob).map_err(|why| {
                CommandError::new(
                    ErrorKind::Usage,
                    format!("invalid protect glob '{glob}': {why}"),
                )
            })?;
        }
        if let Some(model) = &args.model {
            one_word("model", model)?;
        }
        let opts = TaskOptions {
            prompt: args.prompt,
            name,
            base: args.base,
            model: args.model,
            preset: Some(preset),
            max_cost_usd: Some(limits.max_cost_usd),
            max_turns: Some(limits.max_turns),
            max_duration: Some(limits.max_duration),
            protect: args.protect,
            sandbox: None,
            attempt: None,
            runner: args.on,
        };
        let name = self.launch(&ws, &config.mcp, || task::start(&ws, &opts))?;
        self.settle(&ws, &name, args.wait, caller)
    }

    pub fn continue_task(
        &self,
        args: ContinueArgs,
        caller: &Caller,
    ) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let name = task_name(&args.task)?;
        let record = ws.task(&name)?;
        let config = ws.config(Some(record.base))?;
        // The task's own limits are the defaults, lowered to the caps like a new task's.
        let own = record.safety.limits.unwrap_or(config.limits);
        let limits = caps::limits(&config.mcp, &own, &args.limits)?;
        let preset = caps::preset(&config.mcp, record.preset, args.preset.map(Into::into))?;
        // As the follow-up will run: in the sandbox unless the configuration or this machine
        // says otherwise.
        let sandboxed = config.sandbox != crate::safety::sandbox::SandboxMode::Off
            && crate::safety::sandbox::availability().is_ok();
        for tool in &args.allow {
            one_word("allow", tool)?;
            caps::grant(&config.mcp, tool, sandboxed, "allow")?;
        }
        let opts = ContinueOptions {
            name: name.clone(),
            message: args.message,
            allow: args.allow,
            preset: Some(preset),
            max_cost_usd: Some(limits.max_cost_usd),
            max_turns: Some(limits.max_turns),
            max_duration: Some(limits.max_duration),
            sandbox: None,
            rebase: false,
        };
        let name = self.launch(&ws, &config.mcp, || task::resume(&ws, &opts))?;
        self.settle(&ws, &name, args.wait, caller)
    }

    /// Starts a session with `begin` (within `[mcp] max_running`) and hands it to a background
    /// supervisor that asks for permissions.
    fn launch(
        &self,
        ws: &Workspace,
        caps: &crate::config::McpCaps,
        begin: impl FnOnce() -> Result<Started, task::TaskError>,
    ) -> Result<TaskName, CommandError> {
        let mut ours = self.ours.lock().unwrap_or_else(|e| e.into_inner());
        ours.retain(|name| ws.task(name).is_ok_and(|r| r.status.is_live()));
        caps::running(caps, ours.len())?;
        let started = begin()?;
        let name = started.record.name.clone();
        task::hand_off(ws, started, true)?;
        ours.push(name.clone());
        Ok(name)
    }

    /// The task's JSON now, or once it has settled when `wait` is set.
    fn settle(
        &self,
        ws: &Workspace,
        name: &TaskName,
        wait: bool,
        caller: &Caller,
    ) -> Result<Value, CommandError> {
        let record = ws.task(name)?;
        if !wait {
            return Ok(report::task_json(&record));
        }
        let (records, _) = wait_with_progress(ws, vec![record], false, None, caller);
        Ok(report::task_json(&records[0]))
    }

    pub fn answer(&self, args: AnswerArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let name = task_name(&args.task)?;
        // An always answer grants the waiting tool for the rest of the task: within the cap,
        // and only for the prompt checked here.
        let mut checked = None;
        if args.allow && args.always {
            let record = ws.task(&name)?;
            if let Some(pending) = record.pending.as_ref() {
                let config = ws.config(Some(record.base))?;
                let how = "an always answer for";
                caps::grant(
                    &config.mcp,
                    &pending.tool_name,
                    record.safety.sandboxed,
                    how,
                )?;
                checked = Some(pending.request_id.clone());
            }
        }
        let answer = PermissionAnswer {
            allow: args.allow,
            always: args.allow && args.always,
            message: args.message.filter(|_| !args.allow),
            by: format!("cms mcp (pid {})", std::process::id()),
        };
        let delivered =
            task::answer_and_deliver(&ws, &name, checked.as_deref(), answer, HANDOVER_WAIT)?;
        Ok(report::task_json(&delivered.record))
    }

    pub fn status(&self, args: TaskArg) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        Ok(report::task_json(&ws.task(&task_name(&args.task)?)?))
    }

    pub fn list(&self, args: ListArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let (records, _unreadable) = ws.tasks()?;
        let tasks: Vec<Value> = records
            .iter()
            .filter(|r| args.all || !r.status.is_closed())
            .map(report::task_json)
            .collect();
        Ok(json!({ "tasks": tasks }))
    }

    pub fn wait(&self, args: WaitArgs, caller: &Caller) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let mut records = Vec::new();
        for name in &args.tasks {
            records.push(ws.task(&task_name(name)?)?);
        }
        if records.is_empty() {
            return Err(CommandError::new(ErrorKind::Usage, "no tasks to wait for")
                .with_hint("name them in `tasks`; task_list lists them"));
        }
        let timeout = match &args.timeout {
            Some(text) => crate::config::parse_duration(text).map_err(|why| {
                CommandError::new(ErrorKind::Usage, format!("invalid timeout: {why}"))
            })?,
            None => DEFAULT_WAIT,
        };
        let deadline = Instant::now() + timeout;
        let (records, settled) = wait_with_progress(&ws, records, args.any, Some(deadline), caller);
        let tasks: Vec<Value> = records.iter().map(report::task_json).collect();
        if !settled {
            return Err(CommandError::from(task::timed_out(&records))
                .with_json_detail("tasks", Value::Array(tasks)));
        }
        Ok(json!({ "tasks": tasks }))
    }

    pub fn diff(&self, args: DiffArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let record = ws.task(&task_name(&args.task)?)?;
        let (from, to) = task::change_range(&ws, &record)?;
        let files = git::snapshot::changed_files(&ws.repo, from, to)?;
        let mut value = json!({
            "version": report::JSON_VERSION,
            "task": record.name,
            "from": from.to_string(),
            "files": files,
        });
        if !args.stat {
            let patch = git::snapshot::diff_text(&ws.repo.checkout, from, to)?;
            let limit = args.max_bytes.unwrap_or(DEFAULT_PATCH_BYTES);
            if patch.len() > limit {
                let mut cut = limit;
                while !patch.is_char_boundary(cut) {
                    cut -= 1;
                }
                value["patch"] = json!(&patch[..cut]);
                value["truncated"] = json!(format!(
                    "the patch is {} bytes; this is its first {cut}. Ask for more with \
                     max_bytes, or read files from the task's worktree {}",
                    patch.len(),
                    record.worktree.display()
                ));
            } else {
                value["patch"] = json!(patch);
            }
        }
        Ok(value)
    }

    pub fn merge(&self, args: MergeArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let name = task_name(&args.task)?;
        // Protected paths, hooks and `[merge] check` always apply here: overriding them is
        // the user's call, at the command line.
        let opts = MergeOptions {
            mode: match args.mode {
                MergeModeArg::Squash => MergeMode::Squash,
                MergeModeArg::Ff => MergeMode::Auto,
                MergeModeArg::NoFf => MergeMode::NoFastForward,
                MergeModeArg::Rebase => MergeMode::Rebase,
            },
            into: None,
            allow_protected: false,
            verify: true,
            check: true,
        };
        let merged = task::merge(&ws, &name, &opts, |_| {})?;
        let removal = match args.keep {
            true => None,
            false => Some(task::remove_task_checkout(&ws, &merged.record, false)),
        };
        let mut value = report::task_json(&merged.record);
        value["merge"]["removed"] = json!(matches!(removal, Some(Ok(_))));
        value["merge"]["checks"] = json!(merged.checks);
        if let Some(Err(err)) = removal {
            value["warning"] = json!(format!(
                "merged, but could not remove the task's worktree or branch: {err}"
            ));
        }
        Ok(value)
    }

    pub fn discard(&self, args: DiscardArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let name = task_name(&args.task)?;
        // The same plan as `cms discard`, without the terminal's question: unmerged work
        // needs `force`.
        let plan = task::plan_discard(&ws, &name, args.force)?;
        if plan.unmerged > 0 {
            return Err(CommandError::user(format!(
                "task '{name}' has unmerged changes in {} file(s)",
                plan.unmerged
            ))
            .with_hint(
                "task_diff shows them; task_merge keeps them, task_discard with force drops them",
            ));
        }
        let discarded = task::discard(&ws, &plan, args.force)?;
        let mut value = report::task_json(&discarded.record);
        value["stray_branch"] = json!(discarded.stray);
        Ok(value)
    }

    pub fn abort(&self, args: AbortArgs) -> Result<Value, CommandError> {
        let ws = self.workspace()?;
        let names = args
            .tasks
            .iter()
            .map(|n| task_name(n))
            .collect::<Result<Vec<_>, _>>()?;
        let records = task::running_tasks(&ws, &names)?;
        let ended = task::abort(&ws, &records);
        Ok(json!({ "tasks": ended.iter().map(report::task_json).collect::<Vec<_>>() }))
    }
}

/// Waits for the tasks to settle (or the caller to leave), telling it each second (and at each change of a
/// task's status or turns) where they are.
fn wait_with_progress(
    ws: &Workspace,
    records: Vec<TaskRecord>,
    any: bool,
    deadline: Option<Instant>,
    caller: &Caller,
) -> (Vec<TaskRecord>, bool) {
    let mut last: Option<(String, Instant)> = None;
    task::wait_until_settled(ws, records, any, deadline, |records| {
        if (caller.gone)() {
            return ControlFlow::Break(());
        }
        let line = records
            .iter()
            .map(|r| {
                format!(
                    "{} {}, {} turns, {}",
                    r.name,
                    r.status,
                    r.turns,
                    report::format_cost(r.cost_usd)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let due = match &last {
            Some((shown, at)) => *shown != line || at.elapsed() >= Duration::from_secs(1),
            None => true,
        };
        if due {
            (caller.progress)(line.clone());
            last = Some((line, Instant::now()));
        }
        ControlFlow::Continue(())
    })
}

/// Refuses a value that claude would read as something else than the value of its option:
/// the parent is an agent, and `--model -x` or an allowed tool `--foo` must not become flags.
fn one_word(what: &str, value: &str) -> Result<(), CommandError> {
    if value.trim().is_empty() || value.starts_with('-') || value.contains(char::is_control) {
        return Err(CommandError::new(
            ErrorKind::Usage,
            format!(
                "invalid {what} '{}': it must not be empty or start with '-'",
                value.escape_debug()
            ),
        )
        .with_hint("e.g. model \"sonnet\", allow \"Bash(npm test:*)\""));
    }
    Ok(())
}

/// A task name as the command line takes it: a name, never a path.
fn task_name(text: &str) -> Result<TaskName, CommandError> {
    TaskName::parse(text).map_err(|err| {
        CommandError::new(ErrorKind::Usage, err.to_string()).with_hint(
            "a task name is letters, digits, '-', '_' and '.', such as fix-login; task_list \
             lists the tasks",
        )
    })
}
