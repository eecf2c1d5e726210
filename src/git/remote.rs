//! Remotes: which one a task's branch goes to, and pushing it there; and the transport of a
//! task run elsewhere (`runner::wire`): pushing and fetching cms's own refs at a URL, listing
//! them, and commits that carry files (a job's spec, its record and transcript) rather than a
//! checkout's tree.
//!
//! The transport runs the `git` CLI, so the user's ssh config and credential helpers apply. A
//! URL may carry a credential (`https://user:token@host/...`): it never appears in an error,
//! which names the URL with its user info replaced by `***`.

use std::collections::BTreeMap;
use std::path::Path;

use git2::Oid;

use super::GitError;
use super::cmd::{git, run, run_text};

/// The remote a branch based on `base_branch` is pushed to: that branch's upstream remote,
/// else `origin`, else the only remote there is.
pub fn default_remote(dir: &Path, base_branch: Option<&str>) -> Result<Option<String>, GitError> {
    if let Some(branch) = base_branch
        && let Ok(remote) = run_text(dir, ["config", "--get", &format!("branch.{branch}.remote")])
        && !remote.is_empty()
        && remote != "."
    {
        return Ok(Some(remote));
    }
    let remotes: Vec<String> = run_text(dir, ["remote"])?
        .lines()
        .map(str::to_owned)
        .collect();
    if remotes.iter().any(|r| r == "origin") {
        return Ok(Some("origin".to_owned()));
    }
    Ok(match remotes.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    })
}

/// Whether `remote` names a configured remote.
pub fn remote_exists(dir: &Path, remote: &str) -> bool {
    run_text(dir, ["remote", "get-url", remote]).is_ok()
}

/// Pushes `branch` to the branch of the same name on `remote`, replacing it only if it is
/// still `lease` (what cms pushed last; `None`: it must not exist yet), so a `--rebase`d task
/// can be pushed again but nobody else's commits there are ever overwritten. The user's
/// `pre-push` hook runs unless `no_verify`. Returns git's porcelain report.
pub fn push_branch(
    dir: &Path,
    remote: &str,
    branch: &str,
    lease: Option<git2::Oid>,
    no_verify: bool,
) -> Result<String, GitError> {
    let refname = format!("refs/heads/{branch}");
    let refspec = format!("{refname}:{refname}");
    let expect = lease.map(|oid| oid.to_string()).unwrap_or_default();
    let mut cmd = git(dir);
    cmd.args(["push", "--porcelain"])
        .arg(format!("--force-with-lease={refname}:{expect}"));
    if no_verify {
        cmd.arg("--no-verify");
    }
    cmd.arg(remote).arg(refspec);
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Pushes each `(source, destination)` pair to `url`: a source is a commit id or a ref of
/// `dir`'s repository, a destination a full ref name there. With `force`, the destinations
/// are replaced whatever they held. Hooks do not run: these are cms's own refs, not work
/// being published.
pub fn push(dir: &Path, url: &str, refs: &[(&str, &str)], force: bool) -> Result<(), GitError> {
    let mut cmd = git(dir);
    cmd.args(["push", "--quiet", "--no-verify", "--porcelain", "--"])
        .arg(url);
    for (source, destination) in refs {
        let plus = if force { "+" } else { "" };
        cmd.arg(format!("{plus}{source}:{destination}"));
    }
    run(cmd).map(drop).map_err(|err| redacted(err, url))
}

/// Fetches `refspecs` (`+src:dst` as git reads them) from `url` into `dir`'s repository,
/// without tags and without writing `FETCH_HEAD`.
pub fn fetch(dir: &Path, url: &str, refspecs: &[&str]) -> Result<(), GitError> {
    let mut cmd = git(dir);
    cmd.args([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--",
    ])
    .arg(url)
    .args(refspecs);
    run(cmd).map(drop).map_err(|err| redacted(err, url))
}

/// The refs at `url` that match `pattern` (as `git ls-remote` matches: a full name, or its
/// last components; `""` lists every ref), with their ids. `dir` is a repository whose
/// settings apply, or none (then a path URL must be absolute).
pub fn ls_remote(
    dir: Option<&Path>,
    url: &str,
    pattern: &str,
) -> Result<Vec<(Oid, String)>, GitError> {
    let patterns: &[&str] = if pattern.is_empty() { &[] } else { &[pattern] };
    list(dir, url, patterns)
}

/// The refs at `url` matching any of `patterns` (all of them without one).
fn list(dir: Option<&Path>, url: &str, patterns: &[&str]) -> Result<Vec<(Oid, String)>, GitError> {
    let mut cmd = git(dir.unwrap_or(Path::new("/")));
    cmd.args(["ls-remote", "--refs", "--"])
        .arg(url)
        .args(patterns);
    let out = run(cmd).map_err(|err| redacted(err, url))?;
    let text = String::from_utf8_lossy(&out);
    let mut refs = Vec::new();
    for line in text.lines() {
        let Some((id, name)) = line.split_once('\t') else {
            continue;
        };
        let id = Oid::from_str(id).map_err(GitError::libgit2("read git ls-remote's output"))?;
        refs.push((id, name.to_owned()));
    }
    Ok(refs)
}

/// Deletes `refs` (full names) at `url`; a ref that is not there is no error.
pub fn delete_remote_refs(dir: &Path, url: &str, refs: &[&str]) -> Result<(), GitError> {
    if refs.is_empty() {
        return Ok(());
    }
    // Only the refs named are listed (git matches a pattern against any tail of a name, so
    // the names are compared again).
    let present: Vec<String> = list(Some(dir), url, refs)?
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| refs.contains(&name.as_str()))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let mut cmd = git(dir);
    cmd.args(["push", "--quiet", "--no-verify", "--porcelain", "--"])
        .arg(url);
    for name in &present {
        cmd.arg(format!(":{name}"));
    }
    run(cmd).map(drop).map_err(|err| redacted(err, url))
}

/// Writes a commit whose tree holds exactly `files` (top-level names, no folders) on top of
/// `parents`, into `dir`'s repository, and returns it; no ref points at it until it is pushed
/// or a ref is set. Its author is cms, at the current time.
pub fn files_commit(dir: &Path, files: &[(&str, &[u8])], parents: &[Oid]) -> Result<Oid, GitError> {
    let repo = git2::Repository::open(dir).map_err(GitError::libgit2("open the repository"))?;
    let mut tree = repo
        .treebuilder(None)
        .map_err(GitError::libgit2("build a tree"))?;
    for (name, bytes) in files {
        if name.is_empty() || name.contains('/') || *name == "." || *name == ".." {
            return Err(GitError::Command {
                args: "files_commit".to_owned(),
                stderr: format!("'{name}' is not a file name"),
            });
        }
        let blob = repo
            .blob(bytes)
            .map_err(GitError::libgit2("write a blob"))?;
        tree.insert(name, blob, 0o100644)
            .map_err(GitError::libgit2("build a tree"))?;
    }
    let tree = tree.write().map_err(GitError::libgit2("write a tree"))?;
    let tree = repo
        .find_tree(tree)
        .map_err(GitError::libgit2("read a tree"))?;
    let parents = parents
        .iter()
        .map(|id| repo.find_commit(*id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(GitError::libgit2("read a parent commit"))?;
    let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let who =
        git2::Signature::now("cms", "cms@localhost").map_err(GitError::libgit2("sign a commit"))?;
    repo.commit(None, &who, &who, "cms: files", &tree, &parents)
        .map_err(GitError::libgit2("write a commit"))
}

/// The files at the top of `commit`'s tree (as [`files_commit`] writes them), by name.
pub fn read_commit_files(dir: &Path, commit: Oid) -> Result<BTreeMap<String, Vec<u8>>, GitError> {
    let repo = git2::Repository::open(dir).map_err(GitError::libgit2("open the repository"))?;
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(GitError::libgit2("read a commit's tree"))?;
    let mut files = BTreeMap::new();
    for entry in tree.iter() {
        if entry.kind() != Some(git2::ObjectType::Blob) {
            continue;
        }
        let Ok(name) = entry.name() else {
            continue;
        };
        let blob = repo
            .find_blob(entry.id())
            .map_err(GitError::libgit2("read a blob"))?;
        files.insert(name.to_owned(), blob.content().to_vec());
    }
    Ok(files)
}

/// Makes an empty repository at `dir` (a worker's scratch repository), with a work tree.
pub fn init_repository(dir: &Path) -> Result<(), GitError> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = git(dir);
    cmd.args(["init", "--quiet"]);
    run(cmd).map(drop)
}

/// `url` with any user info (a user name, a password, a token) replaced by `***`, for
/// messages: `https://***@host/repo.git`. scp-like (`user@host:path`) and path URLs have no
/// secret in them and are kept.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `err` with `url` redacted wherever it appears (git repeats it in its messages).
fn redacted(err: GitError, url: &str) -> GitError {
    let safe = redact_url(url);
    if safe == url {
        return err;
    }
    let scrub = |text: String| {
        let mut text = text.replace(url, &safe);
        // git also names the URL without its path or with its own redaction.
        if let Some((scheme, rest)) = url.split_once("://")
            && let Some(at) = rest[..rest.find('/').unwrap_or(rest.len())].rfind('@')
        {
            let userinfo = &rest[..at];
            text = text.replace(
                &format!("{scheme}://{userinfo}@"),
                &format!("{scheme}://***@"),
            );
            for secret in userinfo.split(':').filter(|s| s.len() >= 4) {
                text = text.replace(secret, "***");
            }
        }
        text
    };
    match err {
        GitError::Command { args, stderr } => GitError::Command {
            args: scrub(args),
            stderr: scrub(stderr),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{
        delete_remote_refs, fetch, files_commit, ls_remote, push, read_commit_files, redact_url,
    };
    use crate::git::test_support::git_ok;

    /// A repository with one commit, and a bare repository beside it as its remote (a path
    /// URL).
    fn repo_and_remote(root: &Path) -> (std::path::PathBuf, String) {
        let repo = root.join("repo");
        let remote = root.join("remote.git");
        std::fs::create_dir_all(&repo).unwrap();
        git_ok(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        git_ok(&repo, &["add", "."]);
        git_ok(&repo, &["commit", "-q", "-m", "a"]);
        git_ok(root, &["init", "-q", "--bare", "remote.git"]);
        (repo, remote.display().to_string())
    }

    #[test]
    fn a_files_commit_travels_through_a_bare_remote_and_reads_back_byte_for_byte() {
        let root = tempfile::tempdir().unwrap();
        let (repo, url) = repo_and_remote(root.path());
        let bytes: &[u8] = b"{\"version\":1}\n\x00\xff";
        let first = files_commit(&repo, &[("spec.json", bytes), ("empty", b"")], &[]).unwrap();
        let second = files_commit(&repo, &[("spec.json", b"2")], &[first]).unwrap();
        push(
            &repo,
            &url,
            &[
                (&second.to_string(), "refs/cms/jobs/j/in"),
                ("refs/heads/main", "refs/cms/jobs/j/start"),
            ],
            false,
        )
        .unwrap();
        let listed = ls_remote(Some(&repo), &url, "refs/cms/jobs/j/*").unwrap();
        let names: Vec<&str> = listed.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["refs/cms/jobs/j/in", "refs/cms/jobs/j/start"]);
        assert_eq!(listed[0].0, second);
        // Without a repository (a worker's first look), an absolute path URL works too.
        assert_eq!(
            ls_remote(None, &url, "refs/cms/jobs/j/in").unwrap().len(),
            1
        );

        let other = root.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        git_ok(&other, &["init", "-q"]);
        fetch(&other, &url, &["+refs/cms/jobs/j/*:refs/cms/jobs/j/*"]).unwrap();
        let files = read_commit_files(&other, second).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["spec.json"]);
        assert_eq!(files["spec.json"], b"2");
        let files = read_commit_files(&other, first).unwrap();
        assert_eq!(files["spec.json"], bytes);
        assert_eq!(files["empty"], b"");
    }

    #[test]
    fn a_push_replaces_a_ref_only_when_forced_and_deleting_skips_refs_not_there() {
        let root = tempfile::tempdir().unwrap();
        let (repo, url) = repo_and_remote(root.path());
        let one = files_commit(&repo, &[("f", b"1")], &[]).unwrap();
        let two = files_commit(&repo, &[("f", b"2")], &[]).unwrap();
        push(&repo, &url, &[(&one.to_string(), "refs/cms/x")], false).unwrap();
        // Unrelated histories: a plain push is refused, a forced one replaces.
        assert!(push(&repo, &url, &[(&two.to_string(), "refs/cms/x")], false).is_err());
        push(&repo, &url, &[(&two.to_string(), "refs/cms/x")], true).unwrap();
        assert_eq!(
            ls_remote(Some(&repo), &url, "refs/cms/x").unwrap()[0].0,
            two
        );
        delete_remote_refs(&repo, &url, &["refs/cms/x", "refs/cms/never"]).unwrap();
        assert!(
            ls_remote(Some(&repo), &url, "refs/cms/*")
                .unwrap()
                .is_empty()
        );
        delete_remote_refs(&repo, &url, &["refs/cms/x"]).unwrap();
    }

    #[test]
    fn a_files_commit_refuses_folders_in_names() {
        let root = tempfile::tempdir().unwrap();
        let (repo, _) = repo_and_remote(root.path());
        assert!(files_commit(&repo, &[("a/b", b"x")], &[]).is_err());
        assert!(files_commit(&repo, &[("..", b"x")], &[]).is_err());
    }

    #[test]
    fn credentials_in_a_url_never_reach_an_error() {
        assert_eq!(
            redact_url("https://user:s3cr3t-token@example.com/team/app.git"),
            "https://***@example.com/team/app.git"
        );
        assert_eq!(
            redact_url("git@example.com:team/app.git"),
            "git@example.com:team/app.git"
        );
        assert_eq!(redact_url("/srv/app.git"), "/srv/app.git");
        let root = tempfile::tempdir().unwrap();
        let (repo, _) = repo_and_remote(root.path());
        // Nothing listens on port 1 of the loopback: git fails at once, naming the URL.
        let url = "http://someone:s3cr3t-token@127.0.0.1:1/app.git";
        for err in [
            push(&repo, url, &[("HEAD", "refs/cms/x")], true).unwrap_err(),
            fetch(&repo, url, &["refs/cms/x"]).unwrap_err(),
            ls_remote(Some(&repo), url, "refs/cms/*").unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!text.contains("someone"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
