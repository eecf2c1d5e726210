//! The house drawn from the imports stays as docs/architecture.md draws it: the library's
//! modules form no circle, and nothing below the front ends reaches up into one.
//! (`scripts/house.py` draws the same house file by file, for a closer look.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What parses arguments, draws or talks to a parent agent; nothing else may use them.
const FRONT_ENDS: &[&str] = &["cli", "ui", "tui", "mcp"];

/// Where the front ends turn the core's errors into messages with hints and exit codes; the
/// core says what went wrong and never imports it.
const EDGE: &str = "error";

/// Module name -> the other modules its files name as `crate::<module>`, test code left out.
fn module_uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension()? == "rs").then_some(name)
        })
        .filter(|name| !["main", "lib", "bin"].contains(&name.as_str()))
        .collect();
    let mut uses = BTreeMap::new();
    for module in &modules {
        let mut named = BTreeSet::new();
        for file in rust_files(&src, module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for other in &modules {
                if other != module && names_module(&library_code(&text), other) {
                    named.insert(other.clone());
                }
            }
        }
        uses.insert(module.clone(), named);
    }
    uses
}

/// The `.rs` files of a top-level module, its test-only files (tests.rs, test_support.rs)
/// left out.
fn rust_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        return vec![single];
    }
    let mut files = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !["tests", "test_support"].contains(&stem.as_str())
            {
                files.push(path);
            }
        }
    }
    files
}

/// The file without comments and without its `#[cfg(test)]` module (by the house's
/// convention the last thing in a file).
fn library_code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or(text);
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn names_module(code: &str, module: &str) -> bool {
    let path = format!("crate::{module}");
    code.match_indices(&path).any(|(at, _)| {
        let next = code[at + path.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn core_modules_never_import_a_front_end() {
    let above = |module: &str| FRONT_ENDS.contains(&module) || module == EDGE;
    let upward: Vec<String> = module_uses()
        .iter()
        .filter(|(module, _)| !above(module))
        .flat_map(|(module, used)| {
            used.iter()
                .filter(|other| above(other))
                .map(move |other| format!("{module} -> {other}"))
        })
        .collect();
    assert!(upward.is_empty(), "core modules use front ends: {upward:?}");
}

#[test]
fn the_librarys_modules_form_no_circle() {
    let uses = module_uses();
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(
        module: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for other in uses.get(module).into_iter().flatten() {
            if let Some(circle) = visit(other, uses, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in uses.keys() {
        let circle = visit(module, &uses, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "a circle of modules: {}",
            circle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn every_module_the_house_names_exists() {
    // A guard on the guard: were the walk to find no modules, the two tests above would pass
    // on nothing.
    let uses = module_uses();
    for module in ["cli", "task", "session", "store", "git", "safety"] {
        assert!(uses.contains_key(module), "{module} not found in src/");
    }
    assert!(uses["cli"].contains("task"), "cli is seen to use task");
}
