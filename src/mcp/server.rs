//! The MCP server: the tools as rmcp declares them, each a thin call into `tools.rs` run off
//! the async runtime, its result the command line's `--json` object (as structured content
//! and as text) or its error as a tool error (message, causes and hints as text, the JSON
//! error as structured content).

use std::path::PathBuf;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ProgressNotificationParam,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::args::*;
use super::tools::{Caller, Tools};
use crate::error::{CommandError, ErrorKind};
use crate::workspace::Workspace;

const INSTRUCTIONS: &str = "cms runs Claude Code tasks of this repository, each in its own git \
worktree and branch, within limits. task_start starts one in the background (wait=true \
returns when it ends or asks for a permission); task_wait waits; a task that is `waiting` asks \
for a tool, which task_answer allows or denies; task_diff shows what it changed; task_merge \
brings it into its base branch, task_discard drops it, task_continue sends it a follow-up. \
Every result is the task as `cms show --json` prints it.";

/// Serves MCP on stdin and stdout until the client leaves. Refuses to start outside a git
/// repository: the server only ever acts on the one it was started in.
pub fn serve(cwd: PathBuf) -> Result<(), CommandError> {
    Workspace::discover(&cwd)?;
    let tools = Arc::new(Tools::new(cwd));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
    runtime.block_on(async {
        let server = CmsServer {
            tools,
            tool_router: CmsServer::tool_router(),
        };
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|err| CommandError::user(format!("the MCP client did not connect: {err}")))?;
        // rmcp cancels the calls still running when the client leaves, so waits end at their
        // next poll; a start or merge under way finishes before the runtime lets the process
        // exit.
        running
            .waiting()
            .await
            .map_err(|err| CommandError::from_error(ErrorKind::Internal, &err))?;
        Ok(())
    })
}

#[derive(Clone)]
struct CmsServer {
    tools: Arc<Tools>,
    tool_router: ToolRouter<CmsServer>,
}

impl CmsServer {
    /// Parses the arguments and runs `body` on a blocking thread (every tool reads files and
    /// runs git). For a call that may wait (`request` given), what `body` reports goes to the
    /// client as progress notifications when it gave a progress token, and the wait ends if
    /// it cancels the call. A bad argument or a failure is a tool error, so the parent reads
    /// the same message and hint as at the command line.
    async fn call<A, F>(
        &self,
        arguments: JsonObject,
        request: Option<RequestContext<RoleServer>>,
        body: F,
    ) -> CallToolResult
    where
        A: DeserializeOwned + Send + 'static,
        F: FnOnce(&Tools, A, &Caller) -> Result<Value, CommandError> + Send + 'static,
    {
        let args: A = match serde_json::from_value(Value::Object(arguments)) {
            Ok(args) => args,
            Err(err) => {
                return tool_error(
                    CommandError::new(ErrorKind::Usage, format!("invalid arguments: {err}"))
                        .with_hint("the tool's input schema (tools/list) describes its arguments"),
                );
            }
        };
        let cancelled = request.as_ref().map(|r| r.ct.clone());
        let forward = request.and_then(|r| r.meta.get_progress_token().map(|t| (r.peer, t)));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let forwarder = tokio::spawn(async move {
            let mut step = 0.0;
            while let Some(message) = rx.recv().await {
                if let Some((peer, token)) = &forward {
                    step += 1.0;
                    let note =
                        ProgressNotificationParam::new(token.clone(), step).with_message(message);
                    let _ = peer.notify_progress(note).await;
                }
            }
        });
        let tools = self.tools.clone();
        let result = tokio::task::spawn_blocking(move || {
            let progress = move |line: String| {
                let _ = tx.send(line);
            };
            // Cancelled by the client, or by rmcp when the client has left.
            let gone = || cancelled.as_ref().is_some_and(|ct| ct.is_cancelled());
            let caller = Caller {
                progress: &progress,
                gone: &gone,
            };
            body(&tools, args, &caller)
        })
        .await;
        let _ = forwarder.await;
        match result {
            Ok(Ok(value)) => CallToolResult::structured(value),
            Ok(Err(err)) => tool_error(err),
            Err(join) => tool_error(CommandError::internal(format!(
                "the tool failed: {join}; this is a bug in cms"
            ))),
        }
    }
}

/// A failure as the parent reads it: the CLI's error lines as text, its JSON error as
/// structured content, the hints naming tools where the CLI's name commands.
fn tool_error(err: CommandError) -> CallToolResult {
    // Hints naming `cms` commands are for a person at a terminal; the parent calls tools.
    let err = super::hints::for_agent(err);
    let mut text = format!("error: {}", err.message);
    for cause in &err.causes {
        text.push_str(&format!("\ncaused by: {cause}"));
    }
    for hint in &err.hints {
        text.push_str(&format!("\nhint: {hint}"));
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(err.to_json());
    result
}

/// A tool's input schema, derived from its argument type.
fn schema<T: schemars::JsonSchema + std::any::Any>() -> Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_input::<T>().unwrap_or_else(|why| {
        panic!(
            "the input schema of {} is invalid: {why}",
            std::any::type_name::<T>()
        )
    })
}

#[tool_router]
impl CmsServer {
    /// Start a task in the background: its own branch cms/<name> and worktree, a claude
    /// session doing the prompt within limits, asking (status `waiting`) for tools its preset
    /// does not allow. Returns the task at once, or with wait=true once it has ended or waits.
    #[tool(input_schema = schema::<StartArgs>())]
    async fn task_start(
        &self,
        arguments: JsonObject,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(arguments, Some(request), |t, a, p| t.start(a, p))
            .await)
    }

    /// Send a follow-up message to a task that is not running (same claude session, same
    /// worktree); its limits are totals over all its sessions.
    #[tool(input_schema = schema::<ContinueArgs>())]
    async fn task_continue(
        &self,
        arguments: JsonObject,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(arguments, Some(request), |t, a, p| t.continue_task(a, p))
            .await)
    }

    /// Allow or deny the tool call a `waiting` task asks for (its `pending` field).
    #[tool(input_schema = schema::<AnswerArgs>())]
    async fn task_answer(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.answer(a)).await)
    }

    /// One task: status, cost, turns, response, files changed, safety, pending prompt.
    #[tool(input_schema = schema::<TaskArg>())]
    async fn task_status(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.status(a)).await)
    }

    /// The tasks of this repository (open ones, or all with all=true), as {"tasks": [...]}.
    #[tool(input_schema = schema::<ListArgs>())]
    async fn task_list(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.list(a)).await)
    }

    /// Wait until the tasks have ended or wait for a permission answer (with any=true, the
    /// first), sending progress notifications meanwhile; {"tasks": [...]}.
    #[tool(input_schema = schema::<WaitArgs>())]
    async fn task_wait(
        &self,
        arguments: JsonObject,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(arguments, Some(request), |t, a, p| t.wait(a, p))
            .await)
    }

    /// What a task changed from where it forked: the files with line counts and the patch
    /// (cut at max_bytes, with a note), or with stat=true the files only.
    #[tool(input_schema = schema::<DiffArgs>())]
    async fn task_diff(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.diff(a)).await)
    }

    /// Merge a task into the branch it was based on (a squash commit by default), through the
    /// repository's hooks and [merge] checks, then remove its worktree and branch. Refuses on
    /// a conflict, protected-path violations or a failing check, changing nothing.
    #[tool(input_schema = schema::<MergeArgs>())]
    async fn task_merge(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.merge(a)).await)
    }

    /// Remove a task's worktree and branch; refuses when it changed files unless force=true.
    #[tool(input_schema = schema::<DiscardArgs>())]
    async fn task_discard(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.discard(a)).await)
    }

    /// Stop running tasks as Ctrl-C would (their work so far is committed); {"tasks": [...]}.
    #[tool(input_schema = schema::<AbortArgs>())]
    async fn task_abort(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(arguments, None, |t, a, _| t.abort(a)).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CmsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("cms", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}
