//! A real terminal for the tests that need one (`attach`, inline prompts, `cms top`): a tmux
//! server of the test's own running one command line with the test's environment, read back
//! with `capture-pane` and typed into with `send-keys`.

use std::path::PathBuf;
use std::process::Command;

use super::{TestEnv, eventually};

/// A detached tmux session, on a server of its own, running one command line. The pane stays
/// after the command ends, so its last screen can still be read.
pub struct Terminal {
    socket: PathBuf,
    exit_file: PathBuf,
}

impl Terminal {
    /// Runs `cms <args>` with the test's environment in a 200×50 terminal; `None` (with a
    /// message) where tmux is missing outside CI.
    pub fn run(env: &TestEnv, test: &str, args: &[&str]) -> Option<Terminal> {
        Terminal::run_in(env, test, (200, 50), args)
    }

    /// Runs `cms <args>` in a terminal of `size` (columns, rows).
    pub fn run_in(env: &TestEnv, test: &str, size: (u16, u16), args: &[&str]) -> Option<Terminal> {
        let cmd = env.cms_command(&env.repo, args);
        Terminal::start_command(env, test, size, &cmd)
    }

    /// Runs `cmd` exactly (its program, arguments, environment and folder).
    fn start_command(
        env: &TestEnv,
        test: &str,
        size: (u16, u16),
        cmd: &Command,
    ) -> Option<Terminal> {
        let mut line = env_prefix(cmd);
        line.push_str(&format!(" {}", quote(&cmd.get_program().to_string_lossy())));
        for arg in cmd.get_args() {
            line.push_str(&format!(" {}", quote(&arg.to_string_lossy())));
        }
        let cwd = cmd.get_current_dir().unwrap_or(&env.repo).to_owned();
        Terminal::start(env, test, size, &line, &cwd)
    }

    /// Runs a shell command line in the repository, with the test's environment, in a
    /// terminal of `size` (columns, rows).
    pub fn shell(env: &TestEnv, test: &str, size: (u16, u16), script: &str) -> Option<Terminal> {
        let cmd = env.command(std::path::Path::new("sh"), &env.repo, &[]);
        let line = format!("{} sh -c {}", env_prefix(&cmd), quote(script));
        Terminal::start(env, test, size, &line, &env.repo)
    }

    fn start(
        env: &TestEnv,
        test: &str,
        (columns, rows): (u16, u16),
        line: &str,
        cwd: &std::path::Path,
    ) -> Option<Terminal> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is missing in CI; .ci/run installs it"
            );
            eprintln!("SKIPPED {test}: tmux is not installed (.ci/run installs it)");
            return None;
        }
        // One folder per terminal: a second terminal of the test must not find the first's
        // exit code.
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = env.root.join(format!("tmux-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let exit_file = dir.join("exit-code");
        // The shell shares the terminal's process group with cms (it has no job control):
        // a handler, not an ignore (which cms would inherit), keeps a Ctrl-C meant for claude
        // from ending the shell before it writes the exit code.
        let script = format!(
            "trap : INT\ncd {}\n{line}\necho $? > {tmp}\nmv {tmp} {done}\n",
            quote(&cwd.display().to_string()),
            tmp = quote(&format!("{}.tmp", exit_file.display())),
            done = quote(&exit_file.display().to_string()),
        );
        let run_sh = dir.join("run.sh");
        std::fs::write(&run_sh, script).unwrap();
        let conf = dir.join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\n").unwrap();
        let terminal = Terminal {
            socket: dir.join("socket"),
            exit_file,
        };
        let (columns, rows) = (columns.to_string(), rows.to_string());
        terminal.tmux(&[
            "-f",
            conf.to_str().unwrap(),
            "new-session",
            "-d",
            "-x",
            &columns,
            "-y",
            &rows,
            "sh",
            run_sh.to_str().unwrap(),
        ]);
        Some(terminal)
    }

    /// Runs a tmux command against this terminal's server.
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the terminal shows and its scrollback, wrapped lines joined.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-"])
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// Types `text` as it is.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Presses a key by its tmux name (`a`, `Enter`, `Escape`, `C-c`).
    pub fn key(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    /// Waits until the screen shows `needle`, and returns the screen.
    #[track_caller]
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_times(needle, 1)
    }

    /// Waits until the screen shows `needle` at least `times` times, and returns the screen.
    #[track_caller]
    pub fn wait_for_times(&self, needle: &str, times: usize) -> String {
        eventually(
            &format!("the terminal to show {needle:?} {times} time(s)"),
            || {
                let screen = self.screen();
                if screen.matches(needle).count() >= times {
                    Ok(screen)
                } else {
                    Err(screen)
                }
            },
        )
    }

    /// Waits for the command to end and returns its exit code and the last screen.
    #[track_caller]
    pub fn wait_exit(&self) -> (i32, String) {
        let code = eventually("the command to end", || {
            std::fs::read_to_string(&self.exit_file).map_err(|_| self.screen())
        });
        (code.trim().parse().unwrap(), self.screen())
    }

    /// Waits for the command to end, which must be with exit code `code`, and returns the last
    /// screen.
    #[track_caller]
    pub fn exits_with(&self, code: i32) -> String {
        let (ended, screen) = self.wait_exit();
        assert_eq!(ended, code, "{screen}");
        screen
    }

    /// Ends the terminal as closing its window would: the server and the pane's terminal go.
    pub fn close(&self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.close();
    }
}

/// `env -i` with `cmd`'s environment exactly (TestEnv clears the rest), plus the terminal type
/// tmux gives its panes.
fn env_prefix(cmd: &Command) -> String {
    let mut line = String::from("env -i TERM=\"$TERM\"");
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                " {}",
                quote(&format!(
                    "{}={}",
                    key.to_string_lossy(),
                    value.to_string_lossy()
                ))
            ));
        }
    }
    line
}

/// Quotes a word for `sh`.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}
