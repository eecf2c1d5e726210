//! Protected paths: the globs, how a path is put in the one form they are matched against,
//! and the verdict on a path a tool is about to write.
//!
//! Globs follow `.gitignore` conventions, which is how people already describe paths of a
//! repository: a glob with a `/` (other than a trailing one) is anchored at the repository's
//! root, one without matches at any depth, and every glob also covers everything below what
//! it matches, so `infra` and `infra/` protect the folder's contents as `infra/**` does.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::vocab::{Violation, ViolationKind};

/// Always protected, whatever the configuration says: the agent must not be able to loosen
/// its own rules (`.cms.toml`), plant what Claude Code runs or loads (everything under
/// `.claude/`: settings with hooks, agents whose frontmatter holds hooks, skills, commands;
/// they would run on the user's machine after a merge and trust), choose the programs claude
/// starts as MCP servers in the repository (`.mcp.json`, where `cms setup` registers cms), or
/// widen which of the user's ignored files (secrets among them) every later task gets a copy
/// of (`.worktreeinclude`).
pub const ALWAYS_PROTECTED: &[&str] =
    &["/.cms.toml", "/.claude", "/.mcp.json", "/.worktreeinclude"];

/// The compiled globs, each remembered as the user wrote it so a violation can name it.
#[derive(Debug, Clone)]
pub struct Rules {
    globs: Vec<String>,
    set: GlobSet,
    /// For each compiled glob, the index of the glob it came from.
    origin: Vec<usize>,
    /// For each compiled glob, its leading components free of glob syntax.
    literal_prefix: Vec<String>,
}

/// Checks that a glob compiles, for configuration and flags.
pub fn validate_glob(glob: &str) -> Result<(), String> {
    glob_patterns(glob).map(drop)
}

/// The compiled patterns one glob stands for under the conventions above (gitignore
/// anchoring, everything below what it matches): `.worktreeinclude`'s matcher is written the
/// same way.
pub fn glob_patterns(glob: &str) -> Result<Vec<globset::Glob>, String> {
    expand(glob)?
        .iter()
        .map(|pattern| compile(pattern))
        .collect()
}

impl Rules {
    /// The always-protected paths plus `globs`.
    pub fn new<S: AsRef<str>>(globs: &[S]) -> Result<Rules, String> {
        let mut all: Vec<String> = ALWAYS_PROTECTED.iter().map(|g| (*g).to_owned()).collect();
        for glob in globs {
            let glob = glob.as_ref().to_owned();
            if !all.contains(&glob) {
                all.push(glob);
            }
        }
        let mut builder = GlobSetBuilder::new();
        let mut origin = Vec::new();
        let mut literal_prefix = Vec::new();
        for (index, glob) in all.iter().enumerate() {
            for variant in expand(glob)? {
                builder.add(compile(&variant)?);
                literal_prefix.push(literal_prefix_of(&variant));
                origin.push(index);
            }
        }
        let set = builder.build().map_err(|err| err.to_string())?;
        Ok(Rules {
            globs: all,
            set,
            origin,
            literal_prefix,
        })
    }

    /// Every glob in force, the always-protected ones first.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    /// The glob that protects `path` (repository-relative, any spelling), if one does.
    pub fn protecting(&self, path: &str) -> Option<&str> {
        let path = normalize(path)?;
        let hit = self.set.matches(&path).into_iter().next()?;
        Some(&self.globs[self.origin[hit]])
    }

    /// The glob that protects `dir` or anything that could be below it: a submodule pointer
    /// at `dir` changes every file under it at once, and git shows only `dir`.
    pub fn protecting_under(&self, dir: &str) -> Option<&str> {
        if let Some(glob) = self.protecting(dir) {
            return Some(glob);
        }
        let dir = normalize(dir)?;
        let inside = format!("{dir}/");
        self.literal_prefix
            .iter()
            .position(|prefix| *prefix == dir || prefix.starts_with(&inside))
            .map(|hit| self.globs[self.origin[hit]].as_str())
    }
}

/// The globset patterns one user glob stands for.
fn expand(glob: &str) -> Result<Vec<String>, String> {
    let trimmed = glob.trim();
    let mut body = trimmed;
    while let Some(rest) = body.strip_prefix("./") {
        body = rest;
    }
    let anchored = body.starts_with('/') || body.trim_end_matches('/').contains('/');
    let body = body.trim_matches('/');
    let body = collapse_slashes(body);
    if body.is_empty() || body.split('/').any(|c| c == "..") {
        return Err("expected a path glob inside the repository, such as infra/** or *.pem".into());
    }
    let mut patterns = if anchored {
        vec![body.clone(), format!("{body}/**")]
    } else {
        vec![format!("**/{body}"), format!("**/{body}/**")]
    };
    // `infra/**` protects the folder itself too: replacing it with a file or a symlink, or
    // a symlink pointing at it, changes what is below it.
    if let Some(folder) = body.strip_suffix("/**").filter(|f| !f.is_empty()) {
        patterns.push(folder.to_owned());
    }
    Ok(patterns)
}

fn compile(pattern: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|err| err.kind().to_string())
}

fn literal_prefix_of(pattern: &str) -> String {
    pattern
        .split('/')
        .take_while(|c| !c.contains(['*', '?', '[', '{', '\\']))
        .collect::<Vec<_>>()
        .join("/")
}

fn collapse_slashes(text: &str) -> String {
    text.split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// A repository-relative path in the one form globs are matched against: no `.`, no empty
/// components, `..` resolved. `None` if it climbs out of the repository.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Resolves `.` and `..` in an absolute path without touching the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where a write to `path` really lands: symlinks in the part of the path that exists are
/// followed (a link to `../infra` inside the worktree makes `link/x` a write to `infra/x`).
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut resolved = real;
            for part in rest.iter().rev() {
                resolved.push(part);
            }
            return lexical(&resolved);
        }
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Why a write to `path` (absolute, or relative to the worktree) must not happen, if it must
/// not. `worktree` is the task's canonical worktree path.
pub fn check_write(worktree: &Path, path: &str, rules: &Rules) -> Option<Violation> {
    let given = Path::new(path);
    let absolute = if given.is_absolute() {
        given.to_path_buf()
    } else {
        worktree.join(given)
    };
    let lexical_path = lexical(&absolute);
    let real_path = resolve(&lexical_path);
    // Both the path as written and where it really lands must be inside and unprotected.
    for candidate in [&lexical_path, &real_path] {
        let Ok(relative) = candidate.strip_prefix(worktree) else {
            return Some(Violation {
                kind: ViolationKind::OutsideWorktree,
                path: candidate.display().to_string(),
                detail: format!(
                    "{} is outside the task's worktree {}; write only inside it",
                    candidate.display(),
                    worktree.display()
                ),
            });
        };
        let relative = relative.to_string_lossy().into_owned();
        if let Some(violation) = check_relative(&relative, rules) {
            return Some(violation);
        }
    }
    None
}

/// The verdict on a repository-relative path that is about to change.
pub fn check_relative(relative: &str, rules: &Rules) -> Option<Violation> {
    let Some(normal) = normalize(relative) else {
        return Some(Violation {
            kind: ViolationKind::OutsideWorktree,
            path: relative.to_owned(),
            detail: format!("{relative} climbs out of the repository"),
        });
    };
    if normal.split('/').any(|c| c == ".git") {
        return Some(Violation {
            kind: ViolationKind::GitMetadata,
            path: normal.clone(),
            detail: format!(
                "{normal} is git metadata; changing it could redirect the repository or run code"
            ),
        });
    }
    rules.protecting(&normal).map(|glob| Violation {
        kind: ViolationKind::ProtectedPath,
        path: normal.clone(),
        detail: format!("{normal} is protected by '{glob}'"),
    })
}

#[cfg(test)]
mod tests {
    use super::{Rules, check_relative, check_write, normalize, validate_glob};

    fn rules(globs: &[&str]) -> Rules {
        Rules::new(globs).unwrap()
    }

    #[test]
    fn globs_follow_gitignore_anchoring_and_cover_what_is_below() {
        let r = rules(&[
            "infra/**",
            ".github",
            "*.pem",
            "/secrets.txt",
            "docs/private/",
        ]);
        for protected in [
            "infra/main.tf",
            "infra/a/b.tf",
            ".github/workflows/ci.yml",
            "key.pem",
            "deep/dir/key.pem",
            "secrets.txt",
            "docs/private/x.md",
            ".cms.toml",
            ".claude/settings.json",
            // Agents, skills and commands: what Claude Code loads runs code too.
            ".claude/commands/x.md",
            ".claude/agents/x.md",
        ] {
            assert!(r.protecting(protected).is_some(), "{protected}");
        }
        for free in [
            "infrastructure.md",
            "src/infra/main.tf",
            "docs/.github.md",
            "pem.txt",
            "sub/secrets.txt",
            "docs/private.md",
            "sub/.cms.toml",
            "sub/.claude/commands/x.md",
        ] {
            assert_eq!(r.protecting(free), None, "{free}");
        }
        assert_eq!(r.protecting("deep/key.pem"), Some("*.pem"));
    }

    #[test]
    fn every_spelling_of_a_path_is_matched_the_same() {
        let r = rules(&["infra/**"]);
        for spelling in [
            "./infra/x",
            "infra//x",
            "src/../infra/x",
            "infra/./x",
            "./src/.././infra/x",
        ] {
            assert_eq!(r.protecting(spelling), Some("infra/**"), "{spelling}");
        }
        assert_eq!(normalize("../x"), None);
        assert!(check_relative("a/../../x", &r).is_some());
    }

    #[test]
    fn submodule_pointers_are_protected_by_globs_below_them() {
        let r = rules(&["vendor/lib/keys/**", "**/secrets/**"]);
        assert_eq!(r.protecting_under("vendor/lib"), Some("vendor/lib/keys/**"));
        assert_eq!(r.protecting_under("a/secrets"), Some("**/secrets/**"));
        assert_eq!(r.protecting_under("vendor/other"), None);
        assert_eq!(r.protecting_under("vendor/li"), None);
    }

    #[test]
    fn writes_outside_the_worktree_or_into_git_metadata_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let worktree = root.join("wt");
        std::fs::create_dir_all(worktree.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("main/infra")).unwrap();
        std::os::unix::fs::symlink("../../main", worktree.join("docs/escape")).unwrap();
        std::fs::create_dir_all(worktree.join("infra")).unwrap();
        std::os::unix::fs::symlink("../infra", worktree.join("docs/inner")).unwrap();
        let r = rules(&["infra/**"]);
        let verdict = |path: &str| check_write(&worktree, path, &r).map(|v| v.kind.to_string());
        assert_eq!(verdict("src/a.rs"), None);
        assert_eq!(
            verdict(&worktree.join("src/a.rs").display().to_string()),
            None
        );
        assert_eq!(verdict("infra/x.tf").as_deref(), Some("protected_path"));
        assert_eq!(
            verdict("src/../infra/x.tf").as_deref(),
            Some("protected_path")
        );
        assert_eq!(
            verdict("../main/a.txt").as_deref(),
            Some("outside_worktree")
        );
        assert_eq!(
            verdict(&root.join("main/a.txt").display().to_string()).as_deref(),
            Some("outside_worktree")
        );
        assert_eq!(
            verdict("docs/escape/a.txt").as_deref(),
            Some("outside_worktree")
        );
        assert_eq!(
            verdict("docs/inner/x.tf").as_deref(),
            Some("protected_path")
        );
        assert_eq!(verdict(".git").as_deref(), Some("git_metadata"));
        assert_eq!(
            verdict("sub/.git/hooks/pre-commit").as_deref(),
            Some("git_metadata")
        );
    }

    #[test]
    fn bad_globs_are_refused_with_a_reason() {
        assert!(validate_glob("a/[b").is_err());
        assert!(validate_glob("../outside").is_err());
        assert!(validate_glob("").is_err());
        assert!(validate_glob("infra/**").is_ok());
    }
}
