//! The one integration-test binary: every CLI test runs real `cms` against real temporary git
//! repositories with the scripted fake claude, except the `real_claude_` tests, which run the
//! real Claude Code CLI against a fake Anthropic API, and the `fake_claude_` tests, which run the
//! fake claude on its own.

mod common;
mod test_abort;
mod test_ask;
mod test_attach;
mod test_boundary;
mod test_check;
mod test_config;
mod test_continue;
mod test_detach;
mod test_docs;
mod test_doctor;
mod test_errors;
mod test_fake_claude;
mod test_fanout;
mod test_gc;
mod test_hooks;
mod test_inspect;
mod test_layering;
mod test_logs;
mod test_mcp;
mod test_merge;
mod test_path;
mod test_pool;
mod test_processes;
mod test_push;
mod test_ray;
mod test_real_boundary;
mod test_real_claude;
mod test_real_trust;
mod test_safety;
mod test_sandbox;
mod test_setup;
mod test_task;
mod test_top;
mod test_trust;
mod test_wait;
mod test_worker;
mod test_worktree;

/// A test file no `mod` line names is never compiled, so its tests would silently never run:
/// every `tests/test_*.rs` (or `tests/test_*/mod.rs`) must be declared above, every declared
/// one must exist, and every other file in a `tests/test_*/` folder must be declared in its
/// `mod.rs`.
#[test]
fn every_test_file_is_a_module_of_the_runner() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let (declared, files) = modules_and_files(&tests.join("runner.rs"), &tests);
    let undeclared: Vec<_> = files.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "tests/runner.rs has no `mod` line for {undeclared:?}: their tests never run"
    );
    let missing: Vec<_> = declared.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "tests/runner.rs declares {missing:?} without a file"
    );
    for module in files.iter().filter(|m| tests.join(m).is_dir()) {
        let folder = tests.join(module);
        let (declared, files) = modules_and_files(&folder.join("mod.rs"), &folder);
        let undeclared: Vec<_> = files.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "tests/{module}/mod.rs has no `mod` line for {undeclared:?}: their tests never run"
        );
    }
}

/// The modules `root` declares (`mod x;` lines), and the modules `folder` holds: in the tests
/// folder the `test_*` ones, elsewhere every one but `mod` itself.
fn modules_and_files(
    root: &std::path::Path,
    folder: &std::path::Path,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let top = folder.join("runner.rs") == root;
    let wanted = |name: &str| {
        if top {
            name.starts_with("test_")
        } else {
            name != "mod"
        }
    };
    let declared = std::fs::read_to_string(root)
        .unwrap()
        .lines()
        .map(|line| {
            let line = line.trim();
            let public = line
                .strip_prefix("pub(crate) ")
                .or(line.strip_prefix("pub "));
            public.unwrap_or(line)
        })
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .filter(|name| wanted(name))
        .map(str::to_owned)
        .collect();
    let files = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            if path.is_dir() {
                path.join("mod.rs").is_file().then(|| name.to_owned())
            } else {
                Some(name.strip_suffix(".rs")?.to_owned())
            }
        })
        .filter(|name| wanted(name))
        .collect();
    (declared, files)
}
