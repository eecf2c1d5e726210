//! A session: its settings, its turns one after another, and each API response of a turn.

use std::path::PathBuf;
use std::process;
use std::time::{Duration, Instant};

use crate::background::Job;
use crate::hooks::HookGroup;
use crate::ids::{random_hex, uuid_v4};
use crate::inbox::{Abort, Inbox, POLL};
use crate::model::Model;
use crate::options::Options;
use crate::output::{Json, Obj, emit, emit_result, text_block, write_line};
use crate::script::{Script, Step, Turn, Usage};
use crate::usage_error;

pub const NO_MORE_TURNS: &str = "no more scripted turns";

/// How a turn ended, once its `result` line (if any) is out.
pub enum TurnEnd {
    Continue { is_error: bool },
    Exit(i32),
}

/// What a `result` line reports.
pub enum Outcome<'a> {
    Success(&'a str),
    ApiError { status: Option<u16>, text: &'a str },
    MaxTurns,
    MaxBudget,
    Interrupted { tool: bool },
}

/// One assistant API response; its content blocks share the message and request ids.
pub struct ApiResponse {
    pub message_id: String,
    pub request_id: String,
    /// Position among the process's responses; it numbers tool ids like the recording's API did.
    pub index: u64,
}

pub struct TurnState {
    pub started: Instant,
    pub first_response: Option<Duration>,
    pub responses: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub denials: Vec<Json>,
    /// A text block's response that the next step's tool_use continues.
    pub open_response: Option<ApiResponse>,
    /// Names the user message the turn answers, in hook inputs.
    pub prompt_id: String,
    /// The tool step running now is an `ask` step: it needs a permission.
    pub gated: bool,
}

impl TurnState {
    pub fn new() -> TurnState {
        TurnState {
            started: Instant::now(),
            first_response: None,
            responses: 0,
            input_tokens: 0,
            output_tokens: 0,
            denials: Vec::new(),
            open_response: None,
            prompt_id: uuid_v4(),
            gated: false,
        }
    }
}

/// Cumulative for the process, like the real CLI's `total_cost_usd` and `modelUsage`.
#[derive(Default)]
pub struct Totals {
    pub responses: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
}

pub struct Session {
    pub cwd: PathBuf,
    pub session_id: String,
    pub model: Model,
    pub permission_mode: String,
    pub usage: Usage,
    pub max_turns: Option<u64>,
    pub max_budget_usd: Option<f64>,
    pub effort: String,
    pub pre_tool_use: Vec<HookGroup>,
    pub totals: Totals,
    pub inbox: Inbox,
    /// `--permission-prompt-tool stdio`: permission prompts go to the host.
    pub prompt_stdio: bool,
    pub allowed_tools: Vec<String>,
    /// Background Bash commands still running.
    pub jobs: Vec<Job>,
}

impl Session {
    pub fn new(
        opts: &Options,
        script: &Script,
        pre_tool_use: Vec<HookGroup>,
        inbox: Inbox,
    ) -> Session {
        let cwd = std::env::current_dir().unwrap_or_else(|err| {
            usage_error(&format!("fake-claude: no working directory: {err}"))
        });
        let default_mode = if opts.skip_permissions {
            "bypassPermissions"
        } else {
            "default"
        };
        Session {
            cwd,
            session_id: opts
                .resume
                .clone()
                .or_else(|| opts.session_id.clone())
                .unwrap_or_else(uuid_v4),
            model: Model::resolve(opts.model.as_deref()),
            permission_mode: opts
                .permission_mode
                .clone()
                .unwrap_or_else(|| default_mode.to_string()),
            usage: script.usage,
            max_turns: opts.max_turns,
            max_budget_usd: opts.max_budget_usd,
            effort: opts.effort.clone().unwrap_or_else(|| "high".to_string()),
            pre_tool_use,
            totals: Totals::default(),
            inbox,
            prompt_stdio: opts.permission_prompt_tool.as_deref() == Some("stdio"),
            allowed_tools: opts.allowed_tools.clone(),
            jobs: Vec::new(),
        }
    }

    /// The stream-json loop: one turn per user message, and one per background command that
    /// ends between turns (reporting it), until stdin closes.
    pub fn serve(mut self, script: &Script) -> ! {
        let mut answered = 0;
        let mut closed_at: Option<Instant> = None;
        loop {
            for (request_id, task_id) in std::mem::take(&mut self.inbox.stop_requests) {
                self.stop_job(&request_id, &task_id);
            }
            let ended = if self.inbox.pending_turns > 0 {
                self.inbox.pending_turns -= 1;
                None
            } else {
                let ended = match closed_at {
                    Some(since) => self.wind_down(since),
                    None => self.ended_job(),
                };
                match ended {
                    Some(ended) => Some(ended),
                    None if closed_at.is_some() => process::exit(0),
                    None => {
                        if self.inbox.is_closed() {
                            closed_at = Some(Instant::now());
                        } else if let Some(Abort::Sigint) = self.inbox.poll(POLL * 5) {
                            process::exit(1);
                        }
                        continue;
                    }
                }
            };
            if let Some(ended) = &ended {
                self.report_end(ended);
            }
            if let TurnEnd::Exit(code) = self.run_turn(script, script.resume_offset + answered) {
                process::exit(code);
            }
            answered += 1;
        }
    }

    pub fn run_turn(&mut self, script: &Script, index: usize) -> TurnEnd {
        let fallback;
        let turn = match script.turns.get(index) {
            Some(turn) => turn,
            None => {
                fallback = Turn {
                    result: Some(NO_MORE_TURNS.into()),
                    ..Turn::default()
                };
                &fallback
            }
        };
        let end = match &turn.replay {
            Some(path) => {
                // Earlier turns replaying the same file used up its earlier turns; counting them
                // in the script (not in this process) keeps `resume_offset` processes in step.
                let section = script.turns[..index]
                    .iter()
                    .filter(|earlier| earlier.replay.as_ref() == Some(path))
                    .count();
                self.replay(path, section)
            }
            None => self.scripted_turn(turn),
        };
        match turn.exit_after {
            Some(code) => TurnEnd::Exit(code),
            None => end,
        }
    }

    pub fn scripted_turn(&mut self, turn: &Turn) -> TurnEnd {
        emit(&self.init_event());
        let mut st = TurnState::new();
        for (i, step) in turn.steps.iter().enumerate() {
            let next_is_tool = turn.steps.get(i + 1).is_some_and(Step::is_tool);
            if let Err(end) = self.run_step(&mut st, step, next_is_tool) {
                return end;
            }
        }
        self.final_answer(&mut st, turn.result.as_deref().unwrap_or("done"))
    }

    fn run_step(
        &mut self,
        st: &mut TurnState,
        step: &Step,
        next_is_tool: bool,
    ) -> Result<(), TurnEnd> {
        if let Some(abort) = self.inbox.poll(Duration::ZERO) {
            return Err(self.interrupted(st, abort, None));
        }
        match step {
            Step::Text(text) => self.text_step(st, text, next_is_tool),
            Step::Write { path, content } => self.write_step(st, path, content),
            Step::Read { path } => self.read_step(st, path),
            Step::Edit {
                path,
                old,
                new,
                replace_all,
            } => self.edit_step(st, path, old, new, *replace_all),
            Step::Bash(bash) => {
                let (command, description) = bash.parts();
                if bash.in_background() {
                    self.background_bash_step(st, command, description)
                } else {
                    self.bash_step(st, command, description)
                }
            }
            Step::Delete(path) => {
                let command = format!("rm -f -- '{}'", path.replace('\'', r"'\''"));
                self.bash_step(st, &command, &format!("Delete {path}"))
            }
            Step::Deny {
                tool,
                input,
                message,
            } => self.deny_step(st, tool, input, message.as_deref()),
            Step::Ask(inner) => {
                st.gated = true;
                let done = self.run_step(st, inner, next_is_tool);
                st.gated = false;
                done
            }
            Step::SleepMs(ms) => self.sleep_step(st, *ms),
            Step::Garbage(line) => {
                write_line(line);
                Ok(())
            }
            Step::Raw(value) => {
                write_line(&Json::of(value).0);
                Ok(())
            }
            Step::Stderr(text) => {
                eprintln!("{text}");
                Ok(())
            }
            Step::Exit(code) => process::exit(*code),
            Step::ApiError {
                status,
                message,
                retries,
            } => Err(self.api_error(st, *status, message.as_deref(), *retries)),
            Step::SpawnGrandchild { pidfile, sleep_s } => {
                if let Err(err) = self.spawn_grandchild(pidfile, *sleep_s) {
                    eprintln!("fake-claude: spawn_grandchild failed: {err}");
                }
                Ok(())
            }
        }
    }

    // --- API responses --------------------------------------------------------------------

    fn begin_response(&mut self, st: &mut TurnState) -> Result<ApiResponse, TurnEnd> {
        if self.max_turns.is_some_and(|max| st.responses >= max) {
            return Err(self.limit_reached(st, &Outcome::MaxTurns));
        }
        st.first_response
            .get_or_insert_with(|| st.started.elapsed());
        st.responses += 1;
        st.input_tokens += self.usage.input_tokens;
        st.output_tokens += self.usage.output_tokens;
        let index = self.totals.responses;
        self.totals.responses += 1;
        self.totals.input_tokens += self.usage.input_tokens;
        self.totals.output_tokens += self.usage.output_tokens;
        self.totals.cost += self.model.cost(self.usage);
        Ok(ApiResponse {
            message_id: format!("msg_fake_{}", random_hex(20)),
            request_id: format!("req_fake_{}", random_hex(12)),
            index,
        })
    }

    fn text_step(
        &mut self,
        st: &mut TurnState,
        text: &str,
        next_is_tool: bool,
    ) -> Result<(), TurnEnd> {
        let response = self.begin_response(st)?;
        emit(&self.assistant_event(&response, text_block(text)));
        if next_is_tool {
            st.open_response = Some(response);
        }
        Ok(())
    }

    /// Prints a tool_use (in the open text response, if any) and returns its id.
    pub fn tool_use(
        &mut self,
        st: &mut TurnState,
        name: &str,
        input: Json,
    ) -> Result<String, TurnEnd> {
        let response = match st.open_response.take() {
            Some(response) => response,
            None => self.begin_response(st)?,
        };
        let id = format!("toolu_fake_{}_0_{}", response.index, random_hex(8));
        let block = Obj::new()
            .field("type", "tool_use")
            .field("id", &id)
            .field("name", name)
            .raw("input", input)
            .end();
        emit(&self.assistant_event(&response, block));
        // The real CLI checks the budget after each API response, before running its tools.
        if self
            .max_budget_usd
            .is_some_and(|budget| self.totals.cost >= budget)
        {
            return Err(self.limit_reached(st, &Outcome::MaxBudget));
        }
        Ok(id)
    }

    fn final_answer(&mut self, st: &mut TurnState, text: &str) -> TurnEnd {
        if let Some(abort) = self.inbox.poll(Duration::ZERO) {
            return self.interrupted(st, abort, None);
        }
        let response = match self.begin_response(st) {
            Ok(response) => response,
            Err(end) => return end,
        };
        emit(&self.assistant_event(&response, text_block(text)));
        emit_result(&self.result_event(st, &Outcome::Success(text)), text);
        TurnEnd::Continue { is_error: false }
    }

    /// `--max-turns` and `--max-budget-usd` end the turn, and in -p mode the process.
    fn limit_reached(&mut self, st: &TurnState, outcome: &Outcome) -> TurnEnd {
        let event = self.result_event(st, outcome);
        emit_result(&event, &self.outcome_errors(outcome).join("\n"));
        TurnEnd::Exit(1)
    }
}
