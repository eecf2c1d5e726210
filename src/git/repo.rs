//! Finding the repository cms runs in and answering read-only questions about it (libgit2).

use std::path::{Path, PathBuf};

use git2::{BranchType, ErrorCode, Oid, Repository};

use super::GitError;

/// What HEAD of the invoking checkout points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Branch { name: String, oid: Oid },
    Detached { oid: Oid },
}

impl Head {
    pub fn oid(&self) -> Oid {
        match self {
            Head::Branch { oid, .. } | Head::Detached { oid } => *oid,
        }
    }

    pub fn branch(&self) -> Option<&str> {
        match self {
            Head::Branch { name, .. } => Some(name),
            Head::Detached { .. } => None,
        }
    }
}

/// The repository as seen from the directory cms was started in.
pub struct Repo {
    repo: Repository,
    /// The shared `.git` directory of every worktree; cms keeps its store here.
    pub common_dir: PathBuf,
    /// The root of the checkout cms was started in (the main one or a linked worktree).
    pub checkout: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("common_dir", &self.common_dir)
            .field("checkout", &self.checkout)
            .finish()
    }
}

impl Repo {
    /// The main checkout's folder: the parent of a `.git` common dir; none for a bare
    /// repository or a git dir kept elsewhere.
    pub fn main_checkout(&self) -> Option<PathBuf> {
        let common = &self.common_dir;
        (common.file_name()? == ".git").then(|| common.parent().map(Path::to_owned))?
    }

    /// Finds the repository containing `dir`, refusing bare repositories.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let repo = Repository::discover(dir).map_err(|err| match err.code() {
            ErrorCode::NotFound => GitError::NotARepository {
                path: dir.to_owned(),
            },
            _ => GitError::Libgit2 {
                action: "open the repository",
                source: err,
            },
        })?;
        if repo.is_bare() {
            return Err(GitError::BareRepository {
                path: repo.path().to_owned(),
            });
        }
        let checkout = repo
            .workdir()
            .map(canonical)
            .ok_or_else(|| GitError::BareRepository {
                path: repo.path().to_owned(),
            })?;
        let common_dir = canonical(repo.commondir());
        Ok(Repo {
            repo,
            common_dir,
            checkout,
        })
    }

    pub fn raw(&self) -> &Repository {
        &self.repo
    }

    /// HEAD of the invoking checkout; an unborn HEAD means the repository has no commits.
    pub fn head(&self) -> Result<Head, GitError> {
        let head = self.repo.head().map_err(|err| match err.code() {
            ErrorCode::UnbornBranch | ErrorCode::NotFound => GitError::NoCommits,
            _ => GitError::Libgit2 {
                action: "read HEAD",
                source: err,
            },
        })?;
        let oid = head
            .peel_to_commit()
            .map_err(GitError::libgit2("read the commit at HEAD"))?
            .id();
        if self.repo.head_detached().unwrap_or(false) {
            return Ok(Head::Detached { oid });
        }
        match head.shorthand() {
            Ok(name) if head.is_branch() => Ok(Head::Branch {
                name: name.to_owned(),
                oid,
            }),
            _ => Ok(Head::Detached { oid }),
        }
    }

    /// Resolves a revision to a commit; also says which local branch it names, if it names one.
    pub fn resolve(&self, rev: &str) -> Result<(Oid, Option<String>), GitError> {
        let object = self
            .repo
            .revparse_single(rev)
            .map_err(|_| GitError::UnknownRevision {
                rev: rev.to_owned(),
            })?;
        let commit = object
            .peel_to_commit()
            .map_err(|_| GitError::UnknownRevision {
                rev: rev.to_owned(),
            })?;
        let branch = self
            .repo
            .find_branch(rev, BranchType::Local)
            .ok()
            .map(|_| rev.to_owned());
        Ok((commit.id(), branch))
    }

    /// Resolves a revision to a commit or a tree (the empty tree's id included, which a
    /// repository need not store). Returns the id and whether it is a commit.
    pub fn resolve_tree_ish(&self, rev: &str) -> Result<(Oid, bool), GitError> {
        let unknown = || GitError::UnknownRevision {
            rev: rev.to_owned(),
        };
        if rev == EMPTY_TREE {
            return Ok((self.empty_tree()?, false));
        }
        let object = self.repo.revparse_single(rev).map_err(|_| unknown())?;
        if let Ok(commit) = object.peel_to_commit() {
            return Ok((commit.id(), true));
        }
        let tree = object.peel_to_tree().map_err(|_| unknown())?;
        Ok((tree.id(), false))
    }

    /// The empty tree, written to the object database if it is not there yet.
    pub fn empty_tree(&self) -> Result<Oid, GitError> {
        self.repo
            .treebuilder(None)
            .and_then(|builder| builder.write())
            .map_err(GitError::libgit2("write the empty tree"))
    }

    /// A commit's first parent, or `None` for a root commit.
    pub fn first_parent(&self, commit: Oid) -> Result<Option<Oid>, GitError> {
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(GitError::libgit2("read a commit"))?;
        Ok(commit.parent_ids().next())
    }

    pub fn branch_tip(&self, branch: &str) -> Result<Oid, GitError> {
        let b = self
            .repo
            .find_branch(branch, BranchType::Local)
            .map_err(|_| GitError::UnknownBranch {
                branch: branch.to_owned(),
            })?;
        b.get()
            .peel_to_commit()
            .map(|c| c.id())
            .map_err(GitError::libgit2("read a branch tip"))
    }

    pub fn branch_exists(&self, branch: &str) -> bool {
        self.repo.find_branch(branch, BranchType::Local).is_ok()
    }

    /// The short names of every local branch.
    pub fn local_branches(&self) -> Result<Vec<String>, GitError> {
        let branches = self
            .repo
            .branches(Some(BranchType::Local))
            .map_err(GitError::libgit2("list the branches"))?;
        let mut names = Vec::new();
        for branch in branches {
            let (branch, _) = branch.map_err(GitError::libgit2("list the branches"))?;
            if let Ok(Some(name)) = branch.name() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Whether `ancestor` is reachable from `descendant` (equal counts).
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        self.repo
            .graph_descendant_of(descendant, ancestor)
            .map_err(GitError::libgit2("walk the commit graph"))
    }

    /// How many commits `base` has that `branch` lacks: how far the base branch moved on
    /// since `branch` forked from it (or was last rebased onto it).
    pub fn commits_behind(&self, branch: &str, base: &str) -> Result<usize, GitError> {
        let (_, behind) = self
            .repo
            .graph_ahead_behind(self.branch_tip(branch)?, self.branch_tip(base)?)
            .map_err(GitError::libgit2("walk the commit graph"))?;
        Ok(behind)
    }

    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Oid, GitError> {
        self.repo
            .merge_base(a, b)
            .map_err(GitError::libgit2("find a merge base"))
    }

    /// The tree of a commit (or the tree itself when given a tree id).
    pub fn tree_of(&self, oid: Oid) -> Result<Oid, GitError> {
        let object = self
            .repo
            .find_object(oid, None)
            .map_err(GitError::libgit2("read an object"))?;
        object
            .peel_to_tree()
            .map(|t| t.id())
            .map_err(GitError::libgit2("read a tree"))
    }

    /// A name for the repository that reads well in a path: the main checkout's folder name.
    pub fn display_name(&self) -> String {
        let main = if self.common_dir.file_name().is_some_and(|n| n == ".git") {
            self.common_dir.parent().unwrap_or(&self.common_dir)
        } else {
            &self.common_dir
        };
        main.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".git").to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "repo".to_owned())
    }

    /// A file's text as committed, if the commit has it and it is UTF-8.
    pub fn file_at_commit(&self, commit: Oid, path: &str) -> Option<String> {
        let tree = self.repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    }

    /// The bytes of `path` in `commit`, if it is a file there.
    pub fn bytes_at_commit(&self, commit: Oid, path: &str) -> Option<Vec<u8>> {
        let tree = self.repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// Every file (and symlink, its target as bytes) at or below `path` in `commit`, with its
    /// bytes, by path; nothing when `path` is not there.
    pub fn files_at_commit(&self, commit: Oid, path: &str) -> Vec<(String, Vec<u8>)> {
        let Some(tree) = self
            .repo
            .find_commit(commit)
            .ok()
            .and_then(|c| c.tree().ok())
        else {
            return Vec::new();
        };
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        match entry
            .to_object(&self.repo)
            .ok()
            .and_then(|o| o.into_tree().ok())
        {
            Some(sub) => {
                let _ = sub.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                    if let Some(blob) = entry
                        .to_object(&self.repo)
                        .ok()
                        .and_then(|o| o.into_blob().ok())
                    {
                        let name = format!("{path}/{dir}{}", entry.name().unwrap_or_default());
                        files.push((name, blob.content().to_vec()));
                    }
                    git2::TreeWalkResult::Ok
                });
            }
            None => {
                if let Some(blob) = self.bytes_at_commit(commit, path) {
                    files.push((path.to_owned(), blob));
                }
            }
        }
        files.sort();
        files
    }

    /// Eight hex digits derived from the common dir's path: stable for a repository, distinct
    /// between repositories whose folders share a name.
    pub fn short_id(&self) -> String {
        git2::Oid::hash_object(
            git2::ObjectType::Blob,
            self.common_dir.to_string_lossy().as_bytes(),
        )
        .map(|oid| oid.to_string()[..8].to_owned())
        .unwrap_or_else(|_| "00000000".to_owned())
    }
}

/// The git blob id of `bytes`: how cms fingerprints a file's content.
pub fn blob_id(bytes: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, bytes)
        .map(|oid| oid.to_string())
        .unwrap_or_default()
}

/// The id of the tree with no entries, which git accepts in ranges without storing it.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Resolves symlinks so paths compare equal however the user reached them (`/tmp` on macOS).
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}
