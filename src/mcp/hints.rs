//! Hints a parent agent can act on. The errors' hints are written for the command line and
//! name `cms` commands; through MCP each such command becomes the tool call that does the
//! same, and what only the command line can do (a command or flag no tool has) is said to be
//! the user's. The message itself is left as it is.

use serde_json::{Map, Value};

use crate::error::CommandError;

/// Said after a command or flag no tool offers: the parent can only pass it on.
const USERS: &str = " (the user's, at the command line)";

/// How a command-line flag becomes a tool argument.
#[derive(Clone, Copy)]
enum Arg {
    /// `--all` is `"all": true`.
    Bool(&'static str),
    /// `--base X` is `"base": "X"`.
    Value(&'static str),
    /// `--allow X` is `"allow": ["X"]`.
    List(&'static str),
    /// `--ff` is `"mode": "ff"`.
    Set(&'static str, &'static str),
    /// `--detach`: the tools always run tasks in the background.
    Ignored,
}

/// A command that has a tool.
struct Tool {
    command: &'static str,
    tool: &'static str,
    /// Where the positional arguments go, in order.
    positional: &'static [&'static str],
    /// The last positional takes every remaining one, as a list (`tasks`).
    list: bool,
    /// Arguments the tool needs that the command's name implies (`cms deny`).
    fixed: &'static [(&'static str, bool)],
    flags: &'static [(&'static str, Arg)],
}

const LIMITS: [(&str, Arg); 5] = [
    ("--max-cost", Arg::Value("max_cost")),
    ("--max-turns", Arg::Value("max_turns")),
    ("--max-duration", Arg::Value("max_duration")),
    ("--preset", Arg::Value("preset")),
    ("-p", Arg::Value("preset")),
];

const TOOLS: &[Tool] = &[
    Tool {
        command: "task",
        tool: "task_start",
        positional: &["prompt"],
        list: false,
        fixed: &[],
        flags: &[
            ("--name", Arg::Value("name")),
            ("-n", Arg::Value("name")),
            ("--base", Arg::Value("base")),
            ("--model", Arg::Value("model")),
            ("-m", Arg::Value("model")),
            ("--protect", Arg::List("protect")),
            ("--detach", Arg::Ignored),
            ("-d", Arg::Ignored),
            LIMITS[0],
            LIMITS[1],
            LIMITS[2],
            LIMITS[3],
            LIMITS[4],
        ],
    },
    Tool {
        command: "continue",
        tool: "task_continue",
        positional: &["task", "message"],
        list: false,
        fixed: &[],
        flags: &[
            ("--allow", Arg::List("allow")),
            ("--detach", Arg::Ignored),
            ("-d", Arg::Ignored),
            LIMITS[0],
            LIMITS[1],
            LIMITS[2],
            LIMITS[3],
            LIMITS[4],
        ],
    },
    Tool {
        command: "allow",
        tool: "task_answer",
        positional: &["task"],
        list: false,
        fixed: &[("allow", true)],
        flags: &[("--always", Arg::Bool("always"))],
    },
    Tool {
        command: "deny",
        tool: "task_answer",
        positional: &["task", "message"],
        list: false,
        fixed: &[("allow", false)],
        flags: &[],
    },
    Tool {
        command: "show",
        tool: "task_status",
        positional: &["task"],
        list: false,
        fixed: &[],
        flags: &[],
    },
    Tool {
        command: "list",
        tool: "task_list",
        positional: &[],
        list: false,
        fixed: &[],
        flags: &[("--all", Arg::Bool("all"))],
    },
    Tool {
        command: "wait",
        tool: "task_wait",
        positional: &["tasks"],
        list: true,
        fixed: &[],
        flags: &[
            ("--any", Arg::Bool("any")),
            ("--timeout", Arg::Value("timeout")),
        ],
    },
    Tool {
        command: "diff",
        tool: "task_diff",
        positional: &["task"],
        list: false,
        fixed: &[],
        flags: &[("--stat", Arg::Bool("stat"))],
    },
    Tool {
        command: "merge",
        tool: "task_merge",
        positional: &["task"],
        list: false,
        fixed: &[],
        flags: &[
            ("--squash", Arg::Set("mode", "squash")),
            ("--ff", Arg::Set("mode", "ff")),
            ("--no-ff", Arg::Set("mode", "no-ff")),
            ("--rebase", Arg::Set("mode", "rebase")),
            ("--keep", Arg::Bool("keep")),
        ],
    },
    Tool {
        command: "discard",
        tool: "task_discard",
        positional: &["task"],
        list: false,
        fixed: &[],
        flags: &[("--force", Arg::Bool("force"))],
    },
    Tool {
        command: "abort",
        tool: "task_abort",
        positional: &["tasks"],
        list: true,
        fixed: &[],
        flags: &[],
    },
];

/// The commands no tool does; named in a hint, they are the user's to run.
const CLI_ONLY: &[&str] = &[
    "attach",
    "logs",
    "mcp",
    "top",
    "push",
    "commit",
    "gc",
    "pool",
    "check",
    "doctor",
    "trust",
    "hooks",
    "setup",
    "completions",
    "supervise",
];

/// `err` as a parent agent should read it: its hints name tools.
pub(super) fn for_agent(mut err: CommandError) -> CommandError {
    err.hints = err.hints.iter().map(|hint| hint_for_agent(hint)).collect();
    err
}

/// One hint with its `cms` commands (in backticks, or bare to the end of a clause) as tool
/// calls, and its command-line-only flags marked as the user's.
fn hint_for_agent(hint: &str) -> String {
    let mut out = String::new();
    // Odd pieces are the text between backticks.
    for (i, piece) in hint.split('`').enumerate() {
        if i % 2 == 1 {
            match command(piece) {
                Some(Some(call)) => out.push_str(&format!("`{call}`")),
                Some(None) => out.push_str(&format!("`{piece}`{USERS}")),
                None => out.push_str(&format!("`{piece}`")),
            }
        } else {
            out.push_str(&prose(piece));
        }
    }
    out
}

/// Text outside backticks: a bare `cms <command>` runs to the end of its clause.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = bare_command_at(rest) {
        out.push_str(&flags(&rest[..at]));
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        let span = rest[at..end].trim_end();
        let after = &rest[at + span.len()..];
        match command(span) {
            Some(Some(call)) => out.push_str(&format!("`{call}`")),
            _ => out.push_str(&format!("{span}{USERS}")),
        }
        rest = after;
    }
    out.push_str(&flags(rest));
    out
}

/// Where `cms <command>` starts in prose, for a command cms has (not "cms keeps ...").
fn bare_command_at(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("cms ") {
        let at = from + found;
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '(');
        let word: String = text[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        let known = TOOLS.iter().any(|t| t.command == word) || CLI_ONLY.contains(&word.as_str());
        if starts_word && known {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// Prose flags: one a tool takes is named as its argument, one none takes is the user's.
fn flags(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let flag: String = rest[at..]
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_lowercase())
            .collect();
        out.push_str(&rest[..at]);
        let arg = TOOLS
            .iter()
            .flat_map(|t| t.flags.iter())
            .find(|(name, _)| *name == flag)
            .and_then(|(_, arg)| match arg {
                Arg::Bool(name) | Arg::Value(name) | Arg::List(name) => Some(*name),
                Arg::Set(..) | Arg::Ignored => None,
            });
        match arg {
            Some(name) => out.push_str(&format!("`{name}`")),
            None if flag.len() > 2 => out.push_str(&format!("{flag}{USERS}")),
            None => out.push_str(&flag),
        }
        rest = &rest[at + flag.len()..];
    }
    out.push_str(rest);
    out
}

/// A `cms` command line as a tool call: `None` if it is not a `cms` command, `Some(None)` if
/// no tool does what it does (or takes one of its flags).
fn command(text: &str) -> Option<Option<String>> {
    let words = shell_words(text);
    if words.first().map(String::as_str) != Some("cms") {
        return None;
    }
    let name = words.get(1)?;
    let Some(tool) = TOOLS.iter().find(|t| t.command == name) else {
        return CLI_ONLY.contains(&name.as_str()).then_some(None);
    };
    Some(call(tool, &words[2..]))
}

fn call(tool: &Tool, words: &[String]) -> Option<String> {
    let mut args = Map::new();
    for (key, value) in tool.fixed {
        args.insert((*key).to_owned(), Value::Bool(*value));
    }
    let mut positional = 0;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word.starts_with('-') {
            let (_, arg) = tool.flags.iter().find(|(flag, _)| flag == word)?;
            match *arg {
                Arg::Bool(key) => {
                    args.insert(key.to_owned(), Value::Bool(true));
                }
                Arg::Value(key) => {
                    args.insert(key.to_owned(), value(words.next()?));
                }
                Arg::List(key) => push(&mut args, key, words.next()?),
                Arg::Set(key, value) => {
                    args.insert(key.to_owned(), Value::from(value));
                }
                Arg::Ignored => {}
            }
        } else if tool.list {
            push(&mut args, tool.positional.first()?, word);
        } else {
            let key = tool.positional.get(positional)?;
            args.insert((*key).to_owned(), Value::from(word.as_str()));
            positional += 1;
        }
    }
    Some(if args.is_empty() {
        tool.tool.to_owned()
    } else {
        format!("{} {}", tool.tool, Value::Object(args))
    })
}

fn push(args: &mut Map<String, Value>, key: &str, word: &str) {
    let list = args
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.push(Value::from(word));
    }
}

/// A flag's value: a number where it is one, else the text.
fn value(word: &str) -> Value {
    match word.parse::<f64>() {
        Ok(n) => serde_json::Number::from_f64(n).map_or_else(|| Value::from(word), Value::Number),
        Err(_) => Value::from(word),
    }
}

/// Words as a shell splits them: whitespace apart, double quotes kept together.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::hint_for_agent;

    #[test]
    fn commands_in_hints_become_tool_calls() {
        let cases = [
            (
                "did you mean 'fix'? `cms list --all` shows the tasks",
                r#"did you mean 'fix'? `task_list {"all":true}` shows the tasks"#,
            ),
            (
                "wait for it to end (`cms wait x`), or stop it with `cms abort x`",
                r#"wait for it to end (`task_wait {"tasks":["x"]}`), or stop it with `task_abort {"tasks":["x"]}`"#,
            ),
            (
                "its session has ended; `cms continue x \"<MESSAGE>\" --allow <TOOL>` grants a tool",
                r#"its session has ended; `task_continue {"task":"x","message":"<MESSAGE>","allow":["<TOOL>"]}` grants a tool"#,
            ),
            (
                "say what the task should do: cms task \"fix the login bug\"",
                r#"say what the task should do: `task_start {"prompt":"fix the login bug"}`"#,
            ),
            (
                "raise it for this task: cms continue x <MESSAGE> --max-turns <MORE>",
                r#"raise it for this task: `task_continue {"task":"x","message":"<MESSAGE>","max_turns":"<MORE>"}`"#,
            ),
            (
                "pick another --name, or `cms discard` the old task first",
                "pick another `name`, or `task_discard` the old task first",
            ),
            (
                "cms runs no git in that worktree; `cms discard` its task removes it",
                "cms runs no git in that worktree; `task_discard` its task removes it",
            ),
        ];
        for (cli, agent) in cases {
            assert_eq!(hint_for_agent(cli), agent);
        }
    }

    #[test]
    fn what_no_tool_does_is_said_to_be_the_users() {
        let cases = [
            (
                "review them with `cms diff x`; merge anyway with --allow-protected, or `cms discard x`",
                r#"review them with `task_diff {"task":"x"}`; merge anyway with --allow-protected (the user's, at the command line), or `task_discard {"task":"x"}`"#,
            ),
            (
                "`cms continue x --rebase` has the agent rebase the task onto main",
                "`cms continue x --rebase` (the user's, at the command line) has the agent rebase the task onto main",
            ),
            (
                "name one: cms merge x --into <BRANCH>",
                "name one: cms merge x --into <BRANCH> (the user's, at the command line)",
            ),
            (
                "its session asks nothing now; `cms logs x -f` follows it",
                "its session asks nothing now; `cms logs x -f` (the user's, at the command line) follows it",
            ),
            (
                "make a first commit (`git commit --allow-empty -m init`) so tasks have a base",
                "make a first commit (`git commit --allow-empty -m init`) so tasks have a base",
            ),
        ];
        for (cli, agent) in cases {
            assert_eq!(hint_for_agent(cli), agent);
        }
    }
}
