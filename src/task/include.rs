//! Which of the main checkout's ignored files a new worktree gets a copy of: the globs of
//! `.worktreeinclude` (gitignore syntax, as Claude Code's own worktrees read it) and of
//! `[worktree] copy`. They are written as protected paths are (a glob with a `/` is anchored
//! at the top, one without matches at any depth, and each covers everything below what it
//! matches), but matched on their own: nothing is included that they do not name.

use globset::{GlobSet, GlobSetBuilder};

use crate::safety::normalize;
use crate::safety::paths::glob_patterns;

/// The compiled globs of `.worktreeinclude` and `[worktree] copy`.
pub(super) struct Included {
    globs: Vec<String>,
    set: GlobSet,
}

impl Included {
    /// `file` is `.worktreeinclude`'s text (empty when it is missing or untrusted): a glob a
    /// line, blank lines and `#` comments skipped. `copy` adds `[worktree] copy`.
    pub(super) fn new(file: &str, copy: &[String]) -> Result<Included, String> {
        let globs: Vec<String> = file
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .chain(copy.iter().cloned())
            .collect();
        let mut builder = GlobSetBuilder::new();
        for glob in &globs {
            for pattern in glob_patterns(glob)? {
                builder.add(pattern);
            }
        }
        let set = builder.build().map_err(|err| err.to_string())?;
        Ok(Included { globs, set })
    }

    /// Whether nothing is to be copied.
    pub(super) fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Whether `path` (repository-relative) is named, itself or a folder above it.
    pub(super) fn includes(&self, path: &str) -> bool {
        normalize(path).is_some_and(|path| self.set.is_match(path))
    }

    /// Whether a glob could name something below the folder `dir`, which is then worth
    /// looking into.
    pub(super) fn reaches_into(&self, dir: &str) -> bool {
        self.globs.iter().any(|glob| {
            let glob = glob.trim_start_matches('/');
            glob.starts_with(&format!("{dir}/")) || glob.starts_with("**")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Included;

    fn included(file: &str) -> Included {
        Included::new(file, &[]).unwrap()
    }

    #[test]
    fn a_name_without_a_slash_is_included_at_any_depth() {
        let list = included(".env\n*.pem\n");
        assert!(list.includes(".env"));
        assert!(list.includes("app/.env"));
        assert!(list.includes("keys/dev.pem"));
        assert!(!list.includes(".env.local"));
    }

    #[test]
    fn a_glob_with_a_slash_is_anchored_at_the_top() {
        for glob in [
            "config/local.json",
            "/config/local.json",
            "./config/local.json",
        ] {
            let list = included(glob);
            assert!(list.includes("config/local.json"), "{glob}");
            assert!(!list.includes("app/config/local.json"), "{glob}");
        }
    }

    #[test]
    fn a_named_folder_brings_everything_below_it_and_a_folder_glob_the_folder_itself() {
        let list = included("secrets\n");
        assert!(list.includes("secrets"));
        assert!(list.includes("secrets/dev/key"));
        let list = included("cache/**\n");
        assert!(list.includes("cache"));
        assert!(list.includes("cache/a/b"));
        assert!(!list.includes("other/cache/a"));
    }

    #[test]
    fn comments_and_blank_lines_name_nothing() {
        let list = included("# .env\n\n   \n");
        assert!(list.is_empty());
        assert!(!list.includes(".env"));
        assert!(!list.includes("# .env"));
    }

    #[test]
    fn the_always_protected_paths_are_not_included_unless_named() {
        let list = included(".env\n");
        for path in [".claude/settings.local.json", ".mcp.json", ".cms.toml"] {
            assert!(!list.includes(path), "{path}");
        }
        assert!(included(".claude/settings.local.json\n").includes(".claude/settings.local.json"));
    }

    #[test]
    fn copy_globs_add_to_the_files() {
        let list = Included::new(".env\n", &["config/local.json".to_owned()]).unwrap();
        assert!(list.includes(".env"));
        assert!(list.includes("config/local.json"));
        assert!(!Included::new("", &[]).unwrap().includes(".env"));
    }

    #[test]
    fn only_globs_below_a_folder_or_starting_with_stars_reach_into_it() {
        assert!(included("config/local.json").reaches_into("config"));
        assert!(included("/config/local.json").reaches_into("config"));
        assert!(included("**/local.json").reaches_into("config"));
        assert!(!included(".env").reaches_into("config"));
        assert!(!included("configs/x").reaches_into("config"));
    }

    #[test]
    fn a_path_outside_the_repository_is_never_included() {
        assert!(!included("**").includes("../outside"));
    }

    #[test]
    fn a_glob_that_climbs_out_or_does_not_parse_is_refused() {
        assert!(Included::new("../secrets\n", &[]).is_err());
        assert!(Included::new("", &["a/[b".to_owned()]).is_err());
    }
}
