//! A safety copy of the repository's loose objects while a task runs. The folders that hold
//! them must stay writable for the agent's own commits, so its Bash can delete any loose
//! object, the user's commits and other tasks' included. Hard links in a folder the sandbox
//! keeps read-only cost no data and survive the deletion, so what was deleted is put back.

use std::path::{Path, PathBuf};

/// Hard links to every loose object that existed when the backup was taken.
#[derive(Debug)]
pub struct LooseObjectBackup {
    objects_dir: PathBuf,
    backup_dir: PathBuf,
    /// `xx/yyyy…` names relative to both folders.
    names: Vec<String>,
}

impl LooseObjectBackup {
    /// Links every loose object of `common_dir` into `backup_dir` (made fresh). Objects that
    /// cannot be linked are left out: the backup only ever adds a way back.
    pub fn take(common_dir: &Path, backup_dir: &Path) -> std::io::Result<LooseObjectBackup> {
        let objects_dir = common_dir.join("objects");
        let _ = std::fs::remove_dir_all(backup_dir);
        std::fs::create_dir_all(backup_dir)?;
        let mut names = Vec::new();
        for fan in std::fs::read_dir(&objects_dir)?.flatten() {
            let fan_name = fan.file_name().to_string_lossy().into_owned();
            if fan_name.len() != 2 || !fan_name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            let mut made_fan = false;
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                // Only finished objects: git writes each one as `tmp_obj_*` first and renames
                // it, so a temporary file of a concurrent commit would "vanish" by design.
                if !is_object_name(&file_name) {
                    continue;
                }
                let name = format!("{fan_name}/{file_name}");
                if !made_fan {
                    std::fs::create_dir_all(backup_dir.join(&fan_name))?;
                    made_fan = true;
                }
                if std::fs::hard_link(entry.path(), backup_dir.join(&name)).is_ok() {
                    names.push(name);
                }
            }
        }
        Ok(LooseObjectBackup {
            objects_dir,
            backup_dir: backup_dir.to_owned(),
            names,
        })
    }

    /// Links back every backed-up object that is missing now, and returns their ids. An
    /// object replaced by other content is left alone (git names objects by their content,
    /// so a file at that name with other content is already corrupt either way).
    pub fn restore(&self) -> Vec<String> {
        let mut restored = Vec::new();
        // A loose object that `git gc` (auto or the user's) packed meanwhile is gone from its
        // folder but not from the repository: only what git can no longer read is missing.
        let odb = self
            .objects_dir
            .parent()
            .and_then(|common| git2::Repository::open_bare(common).ok());
        let still_readable = |name: &str| {
            let Ok(oid) = git2::Oid::from_str(&name.replace('/', "")) else {
                return false;
            };
            odb.as_ref()
                .and_then(|repo| repo.odb().ok())
                .is_some_and(|odb| odb.exists(oid))
        };
        for name in &self.names {
            let target = self.objects_dir.join(name);
            if target.symlink_metadata().is_ok() || still_readable(name) {
                continue;
            }
            if let Some(parent) = target.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if std::fs::hard_link(self.backup_dir.join(name), &target).is_ok() {
                restored.push(name.replace('/', ""));
            }
        }
        restored
    }

    /// How many loose objects the backup holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// Whether a file in an `objects/xx/` folder is a loose object: the rest of a SHA-1 (38) or
/// SHA-256 (62) id in hex.
fn is_object_name(name: &str) -> bool {
    matches!(name.len(), 38 | 62) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Links back, from a backup folder left by a session whose supervisor died, every object
/// missing from the repository, and removes the folder. Returns the ids put back.
pub fn restore_leftover(common_dir: &Path, backup_dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(fans) = std::fs::read_dir(backup_dir) {
        for fan in fans.flatten() {
            let fan_name = fan.file_name().to_string_lossy().into_owned();
            if let Ok(entries) = std::fs::read_dir(fan.path()) {
                names.extend(
                    entries
                        .flatten()
                        .map(|e| format!("{fan_name}/{}", e.file_name().to_string_lossy())),
                );
            }
        }
    }
    // Dropping it removes the folder.
    let backup = LooseObjectBackup {
        objects_dir: common_dir.join("objects"),
        backup_dir: backup_dir.to_owned(),
        names,
    };
    backup.restore()
}

impl Drop for LooseObjectBackup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.backup_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::{LooseObjectBackup, restore_leftover};

    #[test]
    fn deleted_loose_objects_come_back_and_the_backup_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("repo.git");
        let object = common.join("objects/ab/cdef0123cdef0123cdef0123cdef0123cdef01");
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, b"compressed object").unwrap();
        // A concurrent git's half-written object is not backed up: it is renamed away.
        std::fs::write(common.join("objects/ab/tmp_obj_XyZ123"), b"partial").unwrap();
        std::fs::create_dir_all(common.join("objects/pack")).unwrap();
        let backup_dir = dir.path().join("backup");
        let backup = LooseObjectBackup::take(&common, &backup_dir).unwrap();
        assert_eq!(backup.len(), 1);
        std::fs::remove_dir_all(common.join("objects/ab")).unwrap();
        assert_eq!(
            backup.restore(),
            ["abcdef0123cdef0123cdef0123cdef0123cdef01"]
        );
        assert_eq!(std::fs::read(&object).unwrap(), b"compressed object");
        // Nothing missing: nothing to do.
        assert!(backup.restore().is_empty());
        drop(backup);
        assert!(!backup_dir.exists());
    }

    #[test]
    fn a_backup_left_by_a_dead_session_still_brings_objects_back() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("repo.git");
        let object = common.join("objects/12/34567890abcdef1234567890abcdef12345678");
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, b"object").unwrap();
        let backup_dir = dir.path().join("backup");
        // The session's supervisor died: the backup was never dropped.
        std::mem::forget(LooseObjectBackup::take(&common, &backup_dir).unwrap());
        std::fs::remove_file(&object).unwrap();
        assert_eq!(
            restore_leftover(&common, &backup_dir),
            ["1234567890abcdef1234567890abcdef12345678"]
        );
        assert!(object.is_file());
        assert!(!backup_dir.exists());
    }
}
