//! Task names: validation of user-given names and slugs made from prompts.

use std::fmt;

/// Longest task name; it appears in branch names, paths and terminal columns.
pub const MAX_NAME_LEN: usize = 48;

/// A validated task name, usable as `cms/<name>` and as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task name '{name}': {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

impl TaskName {
    /// Accepts lowercase and uppercase letters, digits, `-`, `_` and `.`, starting with a letter
    /// or digit: a set that is safe as a ref component, a file name and a shell word.
    pub fn parse(name: &str) -> Result<TaskName, InvalidName> {
        let invalid = |reason| InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("it is longer than 48 characters"));
        }
        if !name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid("it must start with a letter or digit"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid("use only letters, digits, '-', '_' and '.'"));
        }
        if name.contains("..") || name.ends_with('.') || name.ends_with(".lock") {
            return Err(invalid(
                "git does not allow '..', a trailing '.' or '.lock'",
            ));
        }
        Ok(TaskName(name.to_owned()))
    }

    /// Makes a name from a prompt: lowercase words joined by `-`, cut at a word boundary.
    /// Other scripts are transliterated to ASCII first (`héllo wörld` gives `hello-world`).
    /// Returns `None` when the prompt has no letters or digits to build on.
    pub fn slug(prompt: &str) -> Option<TaskName> {
        const TARGET_LEN: usize = 32;
        // Characters with no transliteration become a separator rather than a made-up word.
        let ascii = deunicode::deunicode_with_tofu(prompt, " ");
        let mut slug = String::new();
        for word in ascii
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_ascii_lowercase();
            let extra = if slug.is_empty() { 0 } else { 1 };
            if !slug.is_empty() && slug.len() + extra + word.len() > TARGET_LEN {
                break;
            }
            if !slug.is_empty() {
                slug.push('-');
            }
            slug.push_str(&word);
        }
        slug.truncate(TARGET_LEN);
        let slug = slug.trim_end_matches('-');
        TaskName::parse(slug).ok()
    }

    /// `base`, or `base-2`, `base-3`, ... : the first that `taken` says is free.
    pub fn unique(base: &TaskName, taken: impl Fn(&TaskName) -> bool) -> TaskName {
        if !taken(base) {
            return base.clone();
        }
        (2..)
            .map(|n| {
                let suffix = format!("-{n}");
                let mut stem = base.0.clone();
                stem.truncate(MAX_NAME_LEN - suffix.len());
                TaskName(format!("{}{suffix}", stem.trim_end_matches(['-', '.'])))
            })
            .find(|candidate| !taken(candidate))
            .expect("an unbounded range always yields a free name")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn branch(&self) -> String {
        format!("cms/{}", self.0)
    }

    /// The ref that keeps the task's tip from before its last `cms continue --rebase`.
    pub fn rebased_ref(&self) -> String {
        format!("refs/cms/rebased/{}", self.0)
    }
}

impl std::str::FromStr for TaskName {
    type Err = InvalidName;

    fn from_str(text: &str) -> Result<TaskName, InvalidName> {
        TaskName::parse(text)
    }
}

// Stored as the plain string; a record whose name is not a valid name is refused as corrupt
// rather than trusted to build paths and branch names from.
impl serde::Serialize for TaskName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TaskName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TaskName, D::Error> {
        let text = String::deserialize(deserializer)?;
        TaskName::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for TaskName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskName;

    #[test]
    fn slugs_are_short_lowercase_words() {
        let slug = TaskName::slug("Fix the AUTH bug in login.rs, then add tests for it please");
        assert_eq!(slug.unwrap().as_str(), "fix-the-auth-bug-in-login-rs");
        assert_eq!(TaskName::slug("¿¿??"), None);
        assert_eq!(TaskName::slug("é add x").unwrap().as_str(), "e-add-x");
        let long = TaskName::slug(&"a".repeat(100)).unwrap();
        assert!(long.as_str().len() <= 32);
    }

    #[test]
    fn unicode_prompts_give_readable_ascii_names() {
        for (prompt, name) in [
            ("héllo wörld", "hello-world"),
            ("Ünïcödé naïve café", "unicode-naive-cafe"),
            ("Straße öffnen", "strasse-offnen"),
            ("Привет мир", "privet-mir"),
            ("fix the 🐛", "fix-the-bug"),
        ] {
            let slug = TaskName::slug(prompt).unwrap();
            assert_eq!(slug.as_str(), name, "{prompt}");
        }
        // Combining marks (decomposed input) are dropped like precomposed ones.
        assert_eq!(TaskName::slug("he\u{301}llo").unwrap().as_str(), "hello");
    }

    #[test]
    fn names_that_git_or_shells_would_choke_on_are_rejected() {
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a..b",
            "a.lock",
            "x.",
            "ä",
            &"a".repeat(49),
        ] {
            assert!(TaskName::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["fix-auth", "v1.2", "A_b-3"] {
            assert!(TaskName::parse(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn unique_appends_the_first_free_number() {
        let base = TaskName::parse("fix").unwrap();
        let taken = ["fix", "fix-2"];
        let name = TaskName::unique(&base, |n| taken.contains(&n.as_str()));
        assert_eq!(name.as_str(), "fix-3");
        let long = TaskName::parse(&"a".repeat(48)).unwrap();
        let name = TaskName::unique(&long, |n| n == &long);
        assert_eq!(name.as_str().len(), 48);
        assert!(name.as_str().ends_with("-2"));
    }
}
