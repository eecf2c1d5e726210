//! Rendering tasks for people (summaries, tables) and for programs (the task JSON).

use std::path::Path;

use console::Style;
use serde_json::{Value, json};

use crate::git::FileChange;
use crate::git::merge::MergePlan;
use crate::store::{NothingToMerge, TaskName, TaskRecord};
use crate::vocab::Status;

/// Version of the JSON shapes cms prints; bumped on incompatible changes.
pub const JSON_VERSION: u32 = 1;

/// The styles cms uses; all plain when colors are off.
#[derive(Debug, Clone)]
pub struct Styles {
    pub bold: Style,
    pub dim: Style,
    pub good: Style,
    pub bad: Style,
    pub warn: Style,
    pub name: Style,
}

impl Styles {
    /// The colours cms uses, for stdout ([`Styles::for_stderr`] makes those for stderr).
    pub fn colored() -> Styles {
        Styles {
            bold: Style::new().bold(),
            dim: Style::new().dim(),
            good: Style::new().green(),
            bad: Style::new().red(),
            warn: Style::new().yellow(),
            name: Style::new().cyan(),
        }
    }

    /// Styles that add nothing, for a front end that colours by other means (`cms top`).
    pub fn plain() -> Styles {
        let none = Style::new;
        Styles {
            bold: none(),
            dim: none(),
            good: none(),
            bad: none(),
            warn: none(),
            name: none(),
        }
    }

    pub fn for_stderr(self) -> Styles {
        Styles {
            bold: self.bold.for_stderr(),
            dim: self.dim.for_stderr(),
            good: self.good.for_stderr(),
            bad: self.bad.for_stderr(),
            warn: self.warn.for_stderr(),
            name: self.name.for_stderr(),
        }
    }
}

/// Whether a task's session can take a follow-up.
pub fn can_continue(record: &TaskRecord) -> bool {
    record.session_id.is_some()
        && !matches!(
            record.status,
            Status::Running | Status::Waiting | Status::Merged | Status::Discarded
        )
        && record.worktree.is_dir()
}

/// The JSON of a task, shared by `task --json`, `show --json` and `list --json`.
pub fn task_json(record: &TaskRecord) -> Value {
    json!({
        "version": JSON_VERSION,
        "name": record.name,
        "status": record.status,
        "prompt": record.prompt,
        "branch": record.branch,
        "worktree": record.worktree,
        "base": record.base.to_string(),
        "base_branch": record.base_branch,
        "head": record.head.map(|h| h.to_string()),
        "session_id": record.session_id,
        "model": record.model,
        "preset": record.preset,
        "cost_usd": record.cost_usd,
        "turns": record.turns,
        "duration_ms": record.duration_ms,
        "response": record.response,
        "can_continue": can_continue(record),
        "tools_used": record.tools_used,
        "files_changed": record.files_changed,
        "permission_denials": record.permission_denials,
        "safety": record.safety,
        "error": record.error,
        "merge": record.merge,
        "pending": record.pending,
        "stopped_commands": record.stopped_commands,
        "attempt": record.attempt,
        "rebase": record.rebase,
        "push": record.push,
        "remote": record.remote.as_ref().map(|run| json!({
            "runner": run.runner,
            "job": run.job,
            "address": run.address,
            "remote": crate::git::remote::redact_url(&run.remote),
        })),
        "links": record.links,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    })
}

pub fn status_style(styles: &Styles, status: Status) -> &console::Style {
    match status {
        Status::Completed | Status::Merged => &styles.good,
        Status::Running | Status::Waiting | Status::NeedsInput => &styles.warn,
        Status::Discarded => &styles.dim,
        _ => &styles.bad,
    }
}

pub fn format_cost(cost: f64) -> String {
    format!("${cost:.4}")
}

pub fn format_duration_ms(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let total = secs.round() as u64;
        if total < 3600 {
            format!("{}m{:02}s", total / 60, total % 60)
        } else {
            format!("{}h{:02}m", total / 3600, (total % 3600) / 60)
        }
    }
}

/// `$0.0123 · 5 turns · 12.3s`
pub fn ledger_line(record: &TaskRecord) -> String {
    ledger_line_at(record, std::time::SystemTime::now())
}

/// `ledger_line` with a live task's elapsed time measured at `now`.
pub fn ledger_line_at(record: &TaskRecord, now: std::time::SystemTime) -> String {
    format!(
        "{} · {} turn{} · {}",
        format_cost(record.cost_usd),
        record.turns,
        if record.turns == 1 { "" } else { "s" },
        format_duration_ms(elapsed_ms(record, now))
    )
}

/// A task's elapsed time, the one figure every view shows: a live task's own duration is
/// only written when its session ends, so while it is live it is measured from its start.
pub fn elapsed_ms(record: &TaskRecord, now: std::time::SystemTime) -> u64 {
    if record.status.is_live()
        && let Ok(start) = humantime::parse_rfc3339(&record.created_at)
    {
        let live = now.duration_since(start).unwrap_or_default().as_millis();
        return u64::try_from(live)
            .unwrap_or(u64::MAX)
            .max(record.duration_ms);
    }
    record.duration_ms
}

fn status_letter(change: &FileChange) -> &'static str {
    match change.status.as_str() {
        "added" => "A",
        "deleted" => "D",
        "renamed" => "R",
        "copied" => "C",
        "type_changed" => "T",
        _ => "M",
    }
}

/// One line per changed file: `  M src/lib.rs  +3 -1`.
pub fn file_lines(styles: &Styles, files: &[FileChange]) -> Vec<String> {
    let width = files
        .iter()
        .map(|f| display_path(f).len())
        .max()
        .unwrap_or(0);
    files
        .iter()
        .map(|f| {
            let stats = if f.binary {
                "binary".to_owned()
            } else {
                format!(
                    "{} {}",
                    styles.good.apply_to(format!("+{}", f.additions)),
                    styles.bad.apply_to(format!("-{}", f.deletions))
                )
            };
            format!("  {} {:width$}  {stats}", status_letter(f), display_path(f),)
        })
        .collect()
}

fn display_path(change: &FileChange) -> String {
    match &change.old_path {
        Some(old) => format!("{old} → {}", change.path),
        None => change.path.clone(),
    }
}

/// The end-of-task summary: status, ledger, files, response, and what to run next.
pub fn summary(styles: &Styles, record: &TaskRecord) -> String {
    let mut lines = vec![format!(
        "{} {}  {}",
        status_style(styles, record.status).apply_to(record.status.as_str()),
        styles.name.apply_to(&record.name),
        styles.dim.apply_to(ledger_line(record))
    )];
    if let Some(error) = &record.error {
        lines.push(format!("  {} {error}", styles.bad.apply_to("error:")));
    }
    for denial in &record.permission_denials {
        let detail = tool_detail(&denial.tool_name, &denial.tool_input, &record.worktree);
        lines.push(format!(
            "  {} {} {detail}",
            styles.warn.apply_to("denied:"),
            denial.tool_name,
        ));
    }
    for command in &record.stopped_commands {
        lines.push(format!(
            "  {} {}",
            styles.warn.apply_to("stopped:"),
            command.label()
        ));
    }
    lines.extend(
        safety_lines(styles, record)
            .into_iter()
            .map(|l| format!("  {l}")),
    );
    if record.files_changed.is_empty() {
        lines.push(format!("  {}", styles.dim.apply_to("no files changed")));
    } else {
        lines.extend(file_lines(styles, &record.files_changed));
    }
    if let Some(response) = &record.response {
        lines.push(String::new());
        lines.extend(response.lines().map(|l| format!("  {l}")));
    }
    let next = next_commands(record);
    if !next.is_empty() {
        lines.push(String::new());
        lines.push(styles.dim.apply_to("next:").to_string());
        lines.extend(next.into_iter().map(|c| format!("  {c}")));
    }
    lines.join("\n")
}

/// `cms merge`'s line for a task it merged: how, into what, and what else it did; or, when
/// the target already had the task's change, that there was nothing to merge.
pub fn merge_summary(
    styles: &Styles,
    record: &TaskRecord,
    plan: &MergePlan,
    checks: usize,
    removed: bool,
) -> String {
    let name = styles.name.apply_to(&record.name);
    let target = styles.bold.apply_to(&plan.target_branch);
    let nothing = record.merge.as_ref().and_then(|m| m.nothing_to_merge);
    let mut text = match nothing {
        Some(NothingToMerge::AlreadyInTarget) => format!(
            "Nothing to merge: task '{name}''s change is already in {target}; no commit made, \
             the task is recorded as merged."
        ),
        Some(NothingToMerge::NoChanges) => format!(
            "Nothing to merge: task '{name}' changed nothing; no commit made, the task is \
             recorded as merged."
        ),
        None => {
            let short = &plan.new_tip.to_string()[..12];
            let how = plan.kind.as_str().replace('_', "-");
            format!("Merged {name} into {target} ({how}, {short}).")
        }
    };
    if checks > 0 {
        text.push_str(&format!(" {checks} check(s) passed."));
    }
    if plan.checkout.is_some() && plan.new_tip != plan.old_tip {
        text.push_str(" Its checkout was updated.");
    }
    if removed {
        text.push_str(" Removed the task's worktree and branch.");
    }
    text
}

/// The warning when a merge stands but its task's worktree or branch could not be removed.
pub fn not_removed_warning(err: &dyn std::fmt::Display) -> String {
    format!("merged, but could not remove the task's worktree or branch: {err}")
}

/// `cms abort`'s line for a task it asked to stop: its status now, and why.
pub fn abort_line(styles: &Styles, record: &TaskRecord) -> String {
    format!(
        "{} {}: {}",
        styles.name.apply_to(&record.name),
        record.status,
        match record.status {
            Status::Running | Status::Waiting => {
                "still running; its supervisor did not stop".to_owned()
            }
            _ => record.error.clone().unwrap_or_else(|| "stopped".to_owned()),
        }
    )
}

/// `cms discard`'s line for a task it discarded.
pub fn discarded_line(styles: &Styles, name: &TaskName) -> String {
    format!(
        "Discarded {}: removed its worktree and branch.",
        styles.name.apply_to(name)
    )
}

/// The warning when a discarded task's session had switched to a branch of its own.
pub fn stray_branch_warning(stray: &str) -> String {
    format!(
        "its session had switched to branch '{stray}', which cms did not make and kept; \
         `git branch -D {stray}` deletes it"
    )
}

/// One line per violation, per warning (a change while the task ran that it may not have
/// made) and per write cms's hook blocked.
pub fn safety_lines(styles: &Styles, record: &TaskRecord) -> Vec<String> {
    let violations = record.safety.violations.iter().map(|v| {
        format!(
            "{} {} {}",
            styles.bad.apply_to("violation:"),
            v.kind,
            relative(&v.detail, &record.worktree)
        )
    });
    let blocked = record.safety.blocked.iter().map(|b| {
        format!(
            "{} {} {}",
            styles.warn.apply_to("blocked:"),
            b.tool_name,
            relative(&b.violation.detail, &record.worktree)
        )
    });
    let warnings = record.safety.warnings.iter().map(|w| {
        format!(
            "{} {} {}",
            styles.warn.apply_to("warning:"),
            w.kind,
            relative(&w.detail, &record.worktree)
        )
    });
    violations.chain(warnings).chain(blocked).collect()
}

/// The limits a task runs under, for people.
pub fn limits_line(record: &TaskRecord) -> Option<String> {
    let limits = record.safety.limits?;
    Some(format!(
        "${} · {} turns · {}",
        limits.max_cost_usd,
        limits.max_turns,
        humantime::format_duration(std::time::Duration::from_secs(
            limits.max_duration.as_secs()
        ))
    ))
}

/// The prompt a waiting task is paused on, for people: the tool and what it would do.
pub fn pending_line(record: &TaskRecord) -> Option<String> {
    let pending = record.pending.as_ref()?;
    let what = tool_detail(&pending.tool_name, &pending.input, &record.worktree);
    let mut line = if what.is_empty() {
        pending.tool_name.clone()
    } else {
        format!("{} {what}", pending.tool_name)
    };
    if pending.queued > 0 {
        line.push_str(&format!(" (+{} more)", pending.queued));
    }
    Some(line)
}

/// Whether the task's Bash ran confined, for people.
pub fn sandbox_line(record: &TaskRecord) -> &'static str {
    if record.safety.sandboxed {
        "Bash sandboxed (writes only in the worktree and the task's temp dir)"
    } else {
        "Bash not sandboxed"
    }
}

/// The commands that make sense after a task ended this way.
pub fn next_commands(record: &TaskRecord) -> Vec<String> {
    let name = &record.name;
    if record.status == Status::Waiting {
        return vec![
            format!("cms allow {name}"),
            format!("cms allow {name} --always"),
            format!("cms deny {name} \"<WHY>\""),
        ];
    }
    let mut next = review_commands(record);
    if can_continue(record) {
        let follow_up = match record.status {
            Status::NeedsInput => {
                let mut tools: Vec<&str> = record
                    .permission_denials
                    .iter()
                    .map(|d| d.tool_name.as_str())
                    .collect();
                tools.dedup();
                let allow: String = tools.iter().map(|t| format!(" --allow {t}")).collect();
                Some(format!(
                    "cms continue {name} \"<MESSAGE>\"{allow}{}",
                    used_up_flags(record)
                ))
            }
            Status::CostExceeded => Some(format!(
                "cms continue {name} \"<MESSAGE>\" --max-cost <USD>"
            )),
            Status::TurnsExceeded => {
                Some(format!("cms continue {name} \"<MESSAGE>\" --max-turns <N>"))
            }
            Status::DurationExceeded => Some(format!(
                "cms continue {name} \"<MESSAGE>\" --max-duration <DURATION>"
            )),
            Status::Interrupted | Status::Aborted | Status::Failed => {
                Some(format!("cms continue {name} \"<MESSAGE>\""))
            }
            _ => None,
        };
        next.splice(0..0, follow_up);
    }
    next
}

/// The `--max-*` flags a follow-up needs for the limits the task has used up (a task whose
/// background commands were stopped at its time limit has none of it left).
fn used_up_flags(record: &TaskRecord) -> String {
    let Some(limits) = record.safety.limits else {
        return String::new();
    };
    let mut flags = String::new();
    if record.cost_usd >= limits.max_cost_usd {
        flags.push_str(" --max-cost <USD>");
    }
    if record.turns >= limits.max_turns {
        flags.push_str(" --max-turns <N>");
    }
    if u128::from(record.duration_ms) >= limits.max_duration.as_millis() {
        flags.push_str(" --max-duration <DURATION>");
    }
    flags
}

/// What to do with the change a task made.
fn review_commands(record: &TaskRecord) -> Vec<String> {
    let name = &record.name;
    match record.status {
        Status::Merged | Status::Discarded | Status::Running | Status::Waiting => Vec::new(),
        _ if record.files_changed.is_empty() => vec![format!("cms discard {name}")],
        Status::ProtectedPath => vec![
            format!("cms diff {name}"),
            format!("cms merge {name} --allow-protected"),
            format!("cms discard {name}"),
        ],
        _ => vec![
            format!("cms diff {name}"),
            format!("cms merge {name}"),
            format!("cms discard {name}"),
        ],
    }
}

/// A size for people: bytes, KiB, MiB or GiB with one decimal.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// A model's name for people: claude's `[1m]` suffix (the 1M-token context window) reads as
/// a stray escape code, so it is said in words; JSON keeps claude's exact string.
pub fn model_label(model: Option<&str>) -> String {
    match model {
        None => "default model".to_owned(),
        Some(model) => match model.strip_suffix("[1m]") {
            Some(name) => format!("{name} (1M context)"),
            None => model.to_owned(),
        },
    }
}

/// What a tool call acts on, on one line for people: made relative to the worktree first, so
/// a deep path is shortened by the worktree's prefix and never cut mid-name.
pub fn tool_detail(name: &str, input: &serde_json::Value, worktree: &Path) -> String {
    let whole = relative(&crate::session::tool_input_text(name, input), worktree);
    crate::session::shorten_tool_input(name, &whole)
}

/// Shows paths inside the worktree relative to it, which is how the user thinks of them.
pub fn relative(text: &str, worktree: &Path) -> String {
    let prefix = format!("{}/", worktree.display());
    text.replace(&prefix, "")
}

#[cfg(test)]
mod tests {
    use super::{format_bytes, format_cost, format_duration_ms, relative};
    use std::path::Path;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration_ms(1234), "1.2s");
        assert_eq!(format_duration_ms(125_000), "2m05s");
        assert_eq!(format_duration_ms(3_725_000), "1h02m");
        assert_eq!(format_cost(0.49706), "$0.4971");
    }

    #[test]
    fn sizes_read_in_the_largest_fitting_unit() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(format_bytes(5 * 1024 * 1024 * 1024 * 1024), "5120.0 GiB");
    }

    #[test]
    fn a_models_1m_suffix_is_said_in_words() {
        assert_eq!(
            super::model_label(Some("claude-opus-4-8[1m]")),
            "claude-opus-4-8 (1M context)"
        );
        assert_eq!(
            super::model_label(Some("claude-sonnet-4-6")),
            "claude-sonnet-4-6"
        );
        assert_eq!(super::model_label(None), "default model");
    }

    #[test]
    fn worktree_paths_are_shown_relative() {
        assert_eq!(relative("/w/t/src/a.rs", Path::new("/w/t")), "src/a.rs");
    }
}
