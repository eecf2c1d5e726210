//! The command line: the flags the fake acts on, and how it skips the values of the others.

/// Flags that take exactly one value; listing them keeps a value from being read as the prompt.
const VALUE_FLAGS: &[&str] = &[
    "--output-format",
    "--input-format",
    "--model",
    "--permission-mode",
    "--session-id",
    "--max-turns",
    "--max-budget-usd",
    "--append-system-prompt",
    "--append-system-prompt-file",
    "--system-prompt",
    "--system-prompt-file",
    "--settings",
    "--setting-sources",
    "--permission-prompt-tool",
    "--fallback-model",
    "--effort",
    "--agent",
    "--agents",
    "--json-schema",
    "--debug-file",
    "--name",
    "-n",
    "--max-thinking-tokens",
    "--thinking",
    "--task-budget",
    "--resume-session-at",
    "--rewind-files",
];
/// Variadic flags swallow every following argument up to the next flag, as the real CLI's do.
const VARIADIC_FLAGS: &[&str] = &[
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--tools",
    "--add-dir",
    "--mcp-config",
    "--betas",
    "--plugin-dir",
];

#[derive(Default)]
pub struct Options {
    pub print: bool,
    pub verbose: bool,
    pub version: bool,
    pub skip_permissions: bool,
    pub output_format: Option<String>,
    pub input_format: Option<String>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub resume: Option<String>,
    pub session_id: Option<String>,
    pub max_turns: Option<u64>,
    pub max_budget_usd: Option<f64>,
    pub settings: Option<String>,
    pub effort: Option<String>,
    /// `--permission-prompt-tool`: `stdio` sends permission prompts to the host.
    pub permission_prompt_tool: Option<String>,
    /// `--allowedTools` rules, split on commas and spaces as the real CLI splits them.
    pub allowed_tools: Vec<String>,
    pub prompt: Option<String>,
}

impl Options {
    /// Never fails: unknown flags are taken as switches, because a newer cms may pass flags
    /// this fake has no use for.
    pub fn parse(args: &[String]) -> Options {
        let mut opts = Options::default();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                positional.extend(args[i..].iter().cloned());
                break;
            }
            if !arg.starts_with('-') || arg == "-" {
                positional.push(arg.clone());
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            if VARIADIC_FLAGS.contains(&flag) {
                let mut values: Vec<String> = inline.into_iter().collect();
                if values.is_empty() {
                    while i < args.len() && !args[i].starts_with('-') {
                        values.push(args[i].clone());
                        i += 1;
                    }
                }
                if matches!(flag, "--allowedTools" | "--allowed-tools") {
                    opts.allowed_tools.extend(
                        values
                            .iter()
                            .flat_map(|v| v.split([',', ' ']))
                            .filter(|rule| !rule.is_empty())
                            .map(str::to_string),
                    );
                }
                continue;
            }
            if VALUE_FLAGS.contains(&flag) {
                let value = inline.or_else(|| {
                    i += 1;
                    args.get(i - 1).cloned()
                });
                match flag {
                    "--output-format" => opts.output_format = value,
                    "--input-format" => opts.input_format = value,
                    "--model" => opts.model = value,
                    "--permission-mode" => opts.permission_mode = value,
                    "--session-id" => opts.session_id = value,
                    "--max-turns" => opts.max_turns = value.and_then(|v| v.parse().ok()),
                    "--max-budget-usd" => opts.max_budget_usd = value.and_then(|v| v.parse().ok()),
                    "--settings" => opts.settings = value,
                    "--effort" => opts.effort = value,
                    "--permission-prompt-tool" => opts.permission_prompt_tool = value,
                    _ => {}
                }
                continue;
            }
            match flag {
                "-p" | "--print" => opts.print = true,
                "--verbose" => opts.verbose = true,
                "-v" | "--version" => opts.version = true,
                "--dangerously-skip-permissions" => opts.skip_permissions = true,
                // The id is optional in the real CLI too: a following non-flag is taken as it.
                "-r" | "--resume" => {
                    opts.resume = inline.or_else(|| {
                        let next = args.get(i).filter(|next| !next.starts_with('-')).cloned();
                        i += usize::from(next.is_some());
                        next
                    });
                }
                _ => {}
            }
        }
        opts.prompt = positional.into_iter().next();
        opts
    }
}
