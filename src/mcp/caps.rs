//! The `[mcp]` caps on what a parent agent may ask: limits it may lower but not raise, a
//! highest preset, and how many tasks one server runs at once.

use std::time::Duration;

use crate::config::{McpCaps, parse_cost, parse_duration, parse_turns};
use crate::error::{CommandError, ErrorKind};
use crate::vocab::{Limits, Preset};

use super::args::LimitArgs;

const CAP_HINT: &str = "the user raises the caps in the [mcp] section of their \
                        ~/.config/cms/config.toml; a repository's .cms.toml can only lower them";

/// The limits a task gets: each one asked for, if within its cap, else `default` lowered to
/// the cap. Refuses a value above its cap, or one the command line would refuse.
pub fn limits(caps: &McpCaps, default: &Limits, asked: &LimitArgs) -> Result<Limits, CommandError> {
    let cap = &caps.limits;
    let cost = match asked.max_cost {
        Some(cost) => {
            let cost = parse_cost(&cost.to_string()).map_err(|why| bad("max_cost", why))?;
            above_cap(
                cost > cap.max_cost_usd,
                "max_cost",
                format!("${cost}"),
                format!("${}", cap.max_cost_usd),
            )?;
            cost
        }
        None => default.max_cost_usd.min(cap.max_cost_usd),
    };
    let turns = match asked.max_turns {
        Some(turns) => {
            let turns = parse_turns(&turns.to_string()).map_err(|why| bad("max_turns", why))?;
            above_cap(
                turns > cap.max_turns,
                "max_turns",
                turns.to_string(),
                cap.max_turns.to_string(),
            )?;
            turns
        }
        None => default.max_turns.min(cap.max_turns),
    };
    let duration = match &asked.max_duration {
        Some(text) => {
            let duration = parse_duration(text).map_err(|why| bad("max_duration", why))?;
            above_cap(
                duration > cap.max_duration,
                "max_duration",
                text.clone(),
                seconds(cap.max_duration),
            )?;
            duration
        }
        None => default.max_duration.min(cap.max_duration),
    };
    Ok(Limits {
        max_cost_usd: cost,
        max_turns: turns,
        max_duration: duration,
    })
}

/// The preset a task gets: the one asked for if within the cap (refused otherwise), else
/// `default` lowered to the cap.
pub fn preset(
    caps: &McpCaps,
    default: Preset,
    asked: Option<Preset>,
) -> Result<Preset, CommandError> {
    match asked {
        Some(preset) if preset.rank() > caps.max_preset.rank() => Err(CommandError::user(format!(
            "preset {} is above this server's cap ([mcp] max_preset = \"{}\")",
            preset.as_str(),
            caps.max_preset.as_str()
        ))
        .with_hint(format!(
            "ask for {} or less (read-only < plan = review < edit < full); tools beyond it are \
             asked for, and task_answer answers; {CAP_HINT}",
            caps.max_preset.as_str()
        ))),
        Some(preset) => Ok(preset),
        None if default.rank() > caps.max_preset.rank() => Ok(caps.max_preset),
        None => Ok(default),
    }
}

/// Refuses a tool grant (`task_continue`'s `allow`, or the tool of an `always` answer, `how`
/// says which) beyond what `[mcp] max_preset` permits; `sandboxed` is whether the session it
/// applies to runs in the Bash sandbox.
pub fn grant(caps: &McpCaps, tool: &str, sandboxed: bool, how: &str) -> Result<(), CommandError> {
    let cap = caps.max_preset;
    if permits(cap, tool, sandboxed) {
        return Ok(());
    }
    let bash = if cap.rank() >= Preset::Edit.rank() && !sandboxed {
        " (Bash only in the sandbox)"
    } else {
        ""
    };
    Err(CommandError::user(format!(
        "{how} {tool} is above this server's cap ([mcp] max_preset = \"{}\")",
        cap.as_str()
    ))
    .with_hint(format!(
        "grant only tools {} runs without asking{bash}; the task asks for the others one call \
         at a time, and task_answer answers; {CAP_HINT}",
        cap.as_str()
    )))
}

/// Whether granting `tool` (a name, or `Name(specifier)` as `--allowedTools` takes it) lets a
/// task do nothing that a preset at or below `cap` (by [`Preset::rank`]) would not let it do
/// without asking. The rule, cap by cap:
/// - every cap: the read tools (`Read`, `Glob`, `Grep`, `WebSearch`, `WebFetch`), with any
///   specifier (a specifier only narrows a tool);
/// - `review` and `plan` (rank 1): also `Bash(<cmd>)` and `Bash(<cmd>:*)` where `<cmd>` is
///   one of review's git commands (`git diff`, `git log`, `git show`, `git status`,
///   `git blame`), alone or followed by a space and more words;
/// - `edit`: also `Edit`, `MultiEdit`, `Write` and `NotebookEdit` with any specifier (cms's
///   write guard keeps them in the worktree whatever the grant), and, when the session is
///   sandboxed, `Bash` with or without a specifier: sandboxed Bash runs without asking in
///   `edit` ([`bash_auto_allowed`]) and can change no more than Edit can. Unsandboxed, `edit`
///   asks for every Bash command, so no Bash grant beyond review's is within it;
/// - `full`: everything.
///
/// Anything else (MCP tools `mcp__*`, `Task`, unknown names, a malformed specifier) is
/// beyond every cap but `full`.
///
/// [`bash_auto_allowed`]: crate::safety::sandbox::bash_auto_allowed
pub fn permits(cap: Preset, tool: &str, sandboxed: bool) -> bool {
    use crate::vocab::{EDIT_TOOLS, READ_TOOLS, REVIEW_TOOLS};
    if cap == Preset::Full {
        return true;
    }
    let (name, spec) = match tool.split_once('(') {
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(spec) if !spec.contains(['(', ')']) => (name, Some(spec)),
            _ => return false,
        },
        None => (tool, None),
    };
    if READ_TOOLS.contains(&name) {
        return true;
    }
    if cap.rank() >= Preset::Edit.rank() {
        if EDIT_TOOLS.contains(&name) {
            return true;
        }
        if name == "Bash" && sandboxed && crate::safety::sandbox::bash_auto_allowed(cap) {
            return true;
        }
    }
    if cap.rank() >= Preset::Review.rank()
        && name == "Bash"
        && let Some(spec) = spec
    {
        let command = spec.strip_suffix(":*").unwrap_or(spec);
        return REVIEW_TOOLS.iter().any(|allowed| {
            let prefix = allowed
                .strip_prefix("Bash(")
                .and_then(|p| p.strip_suffix(":*)"))
                .unwrap_or_default();
            // `git diff-tree` is not `git diff`: the next character must end the word.
            !prefix.is_empty()
                && command
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        });
    }
    false
}

/// Refuses a start when `running` of this server's tasks are live already.
pub fn running(caps: &McpCaps, running: usize) -> Result<(), CommandError> {
    if running < caps.max_running as usize {
        return Ok(());
    }
    Err(CommandError::user(format!(
        "this server already runs {running} task(s), its cap ([mcp] max_running = {})",
        caps.max_running
    ))
    .with_hint(format!(
        "task_wait for one to end, or task_abort one; {CAP_HINT}"
    )))
}

fn above_cap(above: bool, what: &str, asked: String, cap: String) -> Result<(), CommandError> {
    if !above {
        return Ok(());
    }
    Err(CommandError::user(format!(
        "{what} {asked} is above this server's cap of {cap} ([mcp] {what})"
    ))
    .with_hint(format!("ask for {cap} or less; {CAP_HINT}")))
}

fn bad(what: &str, why: String) -> CommandError {
    CommandError::new(ErrorKind::Usage, format!("invalid {what}: {why}"))
        .with_hint("the tool's input schema describes its arguments")
}

fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::Preset;
    use super::{ErrorKind, LimitArgs, Limits, McpCaps, grant, limits, permits, preset, running};
    use std::time::Duration;

    fn caps() -> McpCaps {
        McpCaps {
            limits: Limits {
                max_cost_usd: 1.0,
                max_turns: 10,
                max_duration: Duration::from_secs(600),
            },
            max_running: 2,
            max_preset: Preset::Edit,
        }
    }

    #[test]
    fn defaults_above_a_cap_are_lowered_to_it_and_asked_values_above_it_refused() {
        let default = Limits {
            max_cost_usd: 5.0,
            max_turns: 3,
            max_duration: Duration::from_secs(60),
        };
        let got = limits(&caps(), &default, &LimitArgs::default()).unwrap();
        assert_eq!(got.max_cost_usd, 1.0);
        assert_eq!(got.max_turns, 3);
        assert_eq!(got.max_duration, Duration::from_secs(60));
        let lower = LimitArgs {
            max_cost: Some(0.5),
            max_turns: Some(10),
            max_duration: Some("10m".into()),
        };
        let got = limits(&caps(), &default, &lower).unwrap();
        assert_eq!((got.max_cost_usd, got.max_turns), (0.5, 10));
        for (asked, needle) in [
            (
                LimitArgs {
                    max_cost: Some(1.5),
                    ..Default::default()
                },
                "max_cost $1.5",
            ),
            (
                LimitArgs {
                    max_turns: Some(11),
                    ..Default::default()
                },
                "max_turns 11",
            ),
            (
                LimitArgs {
                    max_duration: Some("11m".into()),
                    ..Default::default()
                },
                "max_duration 11m",
            ),
        ] {
            let err = limits(&caps(), &default, &asked).unwrap_err();
            assert!(err.message.contains(needle), "{}", err.message);
            assert!(err.hints[0].contains("[mcp]"), "{:?}", err.hints);
        }
        let err = limits(
            &caps(),
            &default,
            &LimitArgs {
                max_turns: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage);
    }

    #[test]
    fn presets_above_the_cap_are_refused_when_asked_and_lowered_when_defaulted() {
        assert!(preset(&caps(), Preset::Edit, Some(Preset::Full)).is_err());
        assert_eq!(
            preset(&caps(), Preset::Edit, Some(Preset::Plan)).unwrap(),
            Preset::Plan
        );
        assert_eq!(preset(&caps(), Preset::Full, None).unwrap(), Preset::Edit);
        let review_cap = McpCaps {
            max_preset: Preset::Review,
            ..caps()
        };
        assert_eq!(
            preset(&review_cap, Preset::Edit, Some(Preset::Plan)).unwrap(),
            Preset::Plan
        );
        assert!(preset(&review_cap, Preset::Edit, Some(Preset::Edit)).is_err());
    }

    #[test]
    fn grants_are_within_a_cap_only_when_a_preset_at_or_below_it_permits_them() {
        use Preset::{Edit, Full, Plan, ReadOnly, Review};
        for (cap, tool, sandboxed, within) in [
            (ReadOnly, "Read", false, true),
            (ReadOnly, "Read(//etc/**)", false, true),
            (ReadOnly, "Write", true, false),
            (ReadOnly, "Bash(git diff:*)", true, false),
            (Review, "Bash(git diff:*)", false, true),
            (Plan, "Bash(git log --oneline:*)", false, true),
            (Review, "Bash(git diff-tree:*)", false, false),
            (Review, "Bash(git diff; rm -rf /:*)", false, false),
            (Review, "Bash", true, false),
            (Review, "Edit", true, false),
            (Edit, "Edit", false, true),
            (Edit, "Write(src/**)", false, true),
            (Edit, "Bash", true, true),
            (Edit, "Bash(rm:*)", true, true),
            (Edit, "Bash", false, false),
            (Edit, "Bash(rm:*)", false, false),
            (Edit, "Bash(git status)", false, true),
            (Edit, "mcp__db__drop", true, false),
            (Edit, "Task", true, false),
            (Edit, "Bash(x", true, false),
            (Full, "mcp__db__drop", false, true),
            (Full, "Bash", false, true),
        ] {
            assert_eq!(
                permits(cap, tool, sandboxed),
                within,
                "{tool} under {cap} (sandboxed: {sandboxed})"
            );
        }
        let err = grant(&caps(), "Bash", false, "allow").unwrap_err();
        assert!(
            err.message.contains("max_preset = \"edit\""),
            "{}",
            err.message
        );
        assert!(err.hints[0].contains("[mcp]"), "{:?}", err.hints);
    }

    #[test]
    fn a_server_starts_no_more_tasks_than_max_running() {
        assert!(running(&caps(), 1).is_ok());
        let err = running(&caps(), 2).unwrap_err();
        assert!(err.message.contains("max_running = 2"), "{}", err.message);
    }
}
