//! Merging a task: the refusals, the merge commit (made through the repository's own hooks),
//! the user's merge checks on the result, moving the target branch and its checkout, and the
//! journal that lets the next cms command finish a merge a crash interrupted.
//!
//! Everything that can refuse happens before anything moves: the merge is computed in memory,
//! its commit is made in a scratch worktree, the checks run there (or in the task's own
//! worktree when it already holds the result). Only then, under the refs lock, is the journal
//! written and the checkout and branch moved; a crash between those steps is settled by
//! [`recover`], which every command runs first.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::TaskError;
use super::open::{change_range, ensure_on_branch, open_for_change, task_git, violations_under};
use crate::config::Config;
use crate::git::merge::{ApplyState, MergeKind, MergeMessages, MergeMode, MergePlan};
use crate::git::{self, GitError, Oid};
use crate::report;
use crate::store::{MergeInfo, NothingToMerge, TaskName, TaskRecord};
use crate::vocab::Status;
use crate::workspace::Workspace;

/// What the user asked of a merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub mode: MergeMode,
    pub into: Option<String>,
    pub allow_protected: bool,
    /// Run the repository's hooks on the commit cms makes (off with `--no-verify`).
    pub verify: bool,
    /// Run `[merge] check` (off with `--no-check`).
    pub check: bool,
}

/// A merged task.
pub struct Merged {
    pub record: TaskRecord,
    pub plan: MergePlan,
    /// The checks that ran and passed, and where.
    pub checks: Vec<String>,
}

/// The record of a merge in progress, written before the checkout or branch moves.
#[derive(Serialize, Deserialize)]
struct Journal {
    task: TaskName,
    target: String,
    #[serde(with = "crate::git::oid_hex")]
    old_tip: Oid,
    #[serde(with = "crate::git::oid_hex")]
    new_tip: Oid,
    kind: String,
    checkout: Option<PathBuf>,
}

impl Journal {
    fn plan(&self) -> MergePlan {
        MergePlan {
            target_branch: self.target.clone(),
            old_tip: self.old_tip,
            new_tip: self.new_tip,
            kind: MergeKind::parse(&self.kind).unwrap_or(MergeKind::MergeCommit),
            checkout: self.checkout.clone(),
        }
    }
}

/// Merges `name` as `opts` says; `on_check` hears of each check before it runs.
pub fn merge(
    ws: &Workspace,
    name: &TaskName,
    opts: &MergeOptions,
    on_check: impl Fn(&str),
) -> Result<Merged, TaskError> {
    let record = open_for_change(ws, name, "merge")?;
    let target = opts
        .into
        .clone()
        .or(record.base_branch.clone())
        .ok_or_else(|| TaskError::NoMergeTarget(record.name.clone()))?;
    // From the refusals to the ref move, one merge into `target` at a time: a second merge
    // planned against the same tip would find it moved and take back the first one's files.
    ws.store
        .with_merge_lock(&target, || merge_into(ws, name, &target, opts, &on_check))?
}

/// [`merge`] under the lock of merges into `target`.
fn merge_into(
    ws: &Workspace,
    name: &TaskName,
    target: &str,
    opts: &MergeOptions,
    on_check: &impl Fn(&str),
) -> Result<Merged, TaskError> {
    // Read again under the lock: the merge it waited for may have been of this very task.
    let record = open_for_change(ws, name, "merge")?;
    let target = target.to_owned();
    let (task_tip, config) = ready_to_leave(ws, &record, opts.allow_protected)?;
    let mut plan = git::merge::plan(&ws.repo, &target, task_tip, opts.mode, &messages(&record))
        .map_err(|err| match err {
            GitError::MergeConflict { files } => TaskError::Conflict {
                name: record.name.clone(),
                target: target.clone(),
                files,
            },
            other => other.into(),
        })?;
    let nothing = nothing_to_merge(ws, &record, &plan, task_tip)?;
    if nothing.is_some() {
        // The target stays as it is: no commit, nothing to check.
        plan.kind = MergeKind::UpToDate;
        plan.new_tip = plan.old_tip;
    }
    let checks = match config {
        _ if nothing.is_some() => Vec::new(),
        // Merging unchecked what the project means to check would be a silent loosening.
        config if opts.check && !config.untrusted.checks.is_empty() => {
            return Err(TaskError::UntrustedCheck {
                name: record.name.clone(),
                checks: config.untrusted.checks,
            });
        }
        config if opts.check => config.merge_checks,
        _ => Vec::new(),
    };
    let ran = prepare(ws, &record, &mut plan, opts, &checks, task_tip, on_check)?;
    crate::fault::step("merge:prepared");
    let record = ws
        .store
        .with_refs_lock(|| -> Result<TaskRecord, TaskError> {
            // The task's branch is the one checked; the target moves by compare-and-swap.
            if ws.repo.branch_tip(&record.branch).ok() != Some(task_tip) {
                return Err(TaskError::ChangedDuringMerge(record.name.clone()));
            }
            // A merge of the same task into another branch holds another merge lock.
            let now = ws.store.load(&record.name)?;
            if now.status.is_closed() {
                return Err(TaskError::Closed {
                    name: now.name,
                    status: now.status,
                });
            }
            if let Some(why) = nothing {
                return Ok(ws.store.update(&record.name, |r| {
                    r.status = Status::Merged;
                    r.merge = Some(MergeInfo {
                        into: target.clone(),
                        commit: plan.old_tip,
                        kind: MergeKind::UpToDate.as_str().to_owned(),
                        nothing_to_merge: Some(why),
                    });
                })?);
            }
            let journal = Journal {
                task: record.name.clone(),
                target: target.clone(),
                old_tip: plan.old_tip,
                new_tip: plan.new_tip,
                kind: plan.kind.as_str().to_owned(),
                checkout: plan.checkout.clone(),
            };
            write_journal(ws, &journal)?;
            crate::fault::step("merge:journal-written");
            if let Err(err) =
                git::merge::apply(&ws.repo, &plan, &reflog(&record.name), crate::fault::step)
            {
                remove_journal(ws, &record.name);
                return Err(err.into());
            }
            let record = mark_merged(ws, &journal)?;
            crate::fault::step("merge:recorded");
            remove_journal(ws, &record.name);
            Ok(record)
        })??;
    Ok(Merged {
        record,
        plan,
        checks: ran,
    })
}

/// Whether merging as `plan` says would leave the target's files as they are, and why: the
/// task's commits change nothing, or the target already has what they change (merged or
/// cherry-picked by hand). Such a merge makes no commit and moves nothing.
fn nothing_to_merge(
    ws: &Workspace,
    record: &TaskRecord,
    plan: &MergePlan,
    task_tip: Oid,
) -> Result<Option<NothingToMerge>, TaskError> {
    let target_tree = ws.repo.tree_of(plan.old_tip)?;
    if ws.repo.tree_of(plan.new_tip)? != target_tree {
        return Ok(None);
    }
    let forked = ws
        .repo
        .merge_base(record.base, task_tip)
        .unwrap_or(record.base);
    Ok(Some(
        if ws.repo.tree_of(task_tip)? == ws.repo.tree_of(forked)? {
            NothingToMerge::NoChanges
        } else {
            NothingToMerge::AlreadyInTarget
        },
    ))
}

/// What a task's work must be before it leaves its worktree (merged or pushed): on its
/// branch, all committed, its conflicts resolved, and clear of protected paths unless
/// allowed. Returns the branch's tip and the repository's configuration at the task's base,
/// which the protected paths were read from.
pub(super) fn ready_to_leave(
    ws: &Workspace,
    record: &TaskRecord,
    allow_protected: bool,
) -> Result<(Oid, Config), TaskError> {
    ensure_on_branch(ws, record)?;
    let tip = ws
        .repo
        .branch_tip(&record.branch)
        .map_err(|_| TaskError::BranchGone(record.name.clone()))?;
    if record.worktree.is_dir()
        && git::snapshot::snapshot_tree(&ws.repo, &task_git(ws, record)?, &record.links)?
            != ws.repo.tree_of(tip)?
    {
        return Err(TaskError::UncommittedWork {
            name: record.name.clone(),
            worktree: record.worktree.clone(),
        });
    }
    if let Some(rebase) = record.rebase.as_ref().filter(|b| !b.unresolved.is_empty()) {
        return Err(TaskError::UnresolvedConflicts {
            name: record.name.clone(),
            files: rebase.unresolved.clone(),
        });
    }
    // As `current_violations`, with the configuration kept for the merge's checks.
    let (from, to) = change_range(ws, record)?;
    let config = ws.config(Some(record.base))?;
    let violations = violations_under(ws, record, &config, from, to)?;
    if !violations.is_empty() && !allow_protected {
        return Err(TaskError::Protected {
            name: record.name.clone(),
            what: crate::safety::what_it_did(&violations),
            count: violations.len(),
            first: violations[0].detail.clone(),
        });
    }
    Ok((tip, config))
}

/// Makes the merge's commit through the repository's hooks and runs the checks on the
/// result, before anything moves. Returns the checks that ran.
fn prepare(
    ws: &Workspace,
    record: &TaskRecord,
    plan: &mut MergePlan,
    opts: &MergeOptions,
    checks: &[String],
    task_tip: Oid,
    on_check: &impl Fn(&str),
) -> Result<Vec<String>, TaskError> {
    if plan.kind == MergeKind::UpToDate {
        return Ok(Vec::new());
    }
    let makes_commit = matches!(plan.kind, MergeKind::Squash | MergeKind::MergeCommit);
    let hooks = opts.verify && makes_commit && git::hooks::has_commit_hooks(&ws.repo.checkout)?;
    if !hooks && checks.is_empty() {
        return Ok(Vec::new());
    }
    // The task's own worktree already holds the result when the target has not moved since
    // the task began: its build caches make the checks fast there.
    let in_task = !hooks
        && record.worktree.is_dir()
        && ws.repo.tree_of(plan.new_tip)? == ws.repo.tree_of(task_tip)?;
    let scratch = if in_task {
        None
    } else {
        let at = if hooks { plan.old_tip } else { plan.new_tip };
        Some(git::scratch::Scratch::new(&ws.repo.common_dir, at)?)
    };
    if hooks && let Some(scratch) = &scratch {
        let made = match plan.kind {
            MergeKind::MergeCommit => scratch.merge_commit(task_tip, &messages(record).merge),
            _ => scratch.commit_tree(ws.repo.tree_of(plan.new_tip)?, &messages(record).squash),
        };
        plan.new_tip = made.map_err(|err| match err {
            GitError::Command { stderr, .. } => TaskError::HookRefused {
                name: record.name.clone(),
                output: super::shell::tail(&stderr),
            },
            other => other.into(),
        })?;
    }
    let dir = match &scratch {
        Some(scratch) => scratch.path().to_owned(),
        None => record.worktree.clone(),
    };
    let mut ran = Vec::new();
    for check in checks {
        on_check(check);
        super::shell::run(&dir, check, &[]).map_err(|(code, output)| TaskError::CheckFailed {
            name: record.name.clone(),
            command: check.clone(),
            code,
            output,
        })?;
        ran.push(check.clone());
    }
    Ok(ran)
}

fn reflog(name: &TaskName) -> String {
    format!("cms: merge task {name}")
}

fn journal_path(ws: &Workspace, name: &TaskName) -> PathBuf {
    ws.store.root().join("merging").join(format!("{name}.json"))
}

fn write_journal(ws: &Workspace, journal: &Journal) -> Result<(), TaskError> {
    let path = journal_path(ws, &journal.task);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| crate::store::StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let bytes = serde_json::to_vec_pretty(journal).expect("a journal always serializes");
    crate::store::write_atomic(&path, &bytes)?;
    Ok(())
}

fn remove_journal(ws: &Workspace, name: &TaskName) {
    let _ = std::fs::remove_file(journal_path(ws, name));
}

fn mark_merged(ws: &Workspace, journal: &Journal) -> Result<TaskRecord, TaskError> {
    Ok(ws.store.update(&journal.task, |r| {
        r.status = Status::Merged;
        r.merge = Some(MergeInfo {
            into: journal.target.clone(),
            commit: journal.new_tip,
            kind: journal.kind.clone(),
            nothing_to_merge: None,
        });
    })?)
}

/// Settles the merges a crash interrupted: one whose branch moved is finished (its record
/// marked merged), one whose checkout alone moved is completed by moving the branch, one that
/// changed nothing is dropped, and one whose branch someone else moved since has its checkout
/// put back. Returns a line for each merge settled, for a warning.
pub fn recover(ws: &Workspace) -> Vec<String> {
    let dir = ws.store.root().join("merging");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut settled = Vec::new();
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(journal) = serde_json::from_str::<Journal>(&text) else {
            let _ = std::fs::remove_file(entry.path());
            continue;
        };
        let outcome = ws
            .store
            .with_refs_lock(|| -> Result<Option<String>, TaskError> {
                // Another command may have settled it while this one waited for the lock.
                if !entry.path().exists() {
                    return Ok(None);
                }
                let plan = journal.plan();
                let line = match git::merge::state(&ws.repo, &plan)? {
                    ApplyState::Before => None,
                    ApplyState::CheckoutOnly => {
                        git::merge::finish(&ws.repo, &plan, &reflog(&journal.task))?;
                        mark_merged(ws, &journal)?;
                        Some(format!(
                            "finished merging task '{}' into {}",
                            journal.task, journal.target
                        ))
                    }
                    ApplyState::Done => {
                        let merged = ws
                            .store
                            .load(&journal.task)
                            .is_ok_and(|r| r.status == Status::Merged);
                        if !merged {
                            mark_merged(ws, &journal)?;
                        }
                        (!merged).then(|| {
                            format!(
                                "recorded task '{}' as merged into {}",
                                journal.task, journal.target
                            )
                        })
                    }
                    ApplyState::Elsewhere => {
                        git::merge::undo_checkout(&ws.repo, &plan)?;
                        Some(format!(
                            "took back an unfinished merge of task '{}': {} moved meanwhile",
                            journal.task, journal.target
                        ))
                    }
                };
                remove_journal(ws, &journal.task);
                Ok(line)
            });
        match outcome {
            Ok(Ok(Some(line))) => settled.push(line),
            Ok(Ok(None)) => {}
            Ok(Err(err)) => settled.push(format!(
                "could not settle the unfinished merge of task '{}': {err}",
                journal.task
            )),
            Err(err) => settled.push(format!("could not settle an unfinished merge: {err}")),
        }
    }
    settled
}

/// The commit messages of a task's merge: the prompt's first line as the subject, the task's
/// result as the body, and trailers saying where it came from.
fn messages(record: &TaskRecord) -> MergeMessages {
    let subject = subject(record);
    let mut trailers = format!("Cms-Task: {}\n", record.name);
    if let Some(session) = &record.session_id {
        trailers.push_str(&format!("Cms-Session: {session}\n"));
    }
    trailers.push_str(&format!(
        "Cms-Cost: {}\nCms-Turns: {}\n",
        report::format_cost(record.cost_usd),
        record.turns
    ));
    let body = record
        .response
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| format!("{r}\n\n"))
        .unwrap_or_default();
    MergeMessages {
        merge: format!(
            "Merge cms task '{}': {subject}\n\n{body}{trailers}",
            record.name
        ),
        squash: format!("{subject}\n\n{body}{trailers}"),
    }
}

/// A task as a one-line title (commit subject, pull request title): its prompt's first line,
/// at most 72 characters.
pub(super) fn subject(record: &TaskRecord) -> String {
    record
        .prompt
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(72)
        .collect()
}
