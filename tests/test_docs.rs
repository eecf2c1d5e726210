//! The README and docs/commands.md name every command `cms --help` lists, so a new command
//! cannot ship undocumented and the README's table stays one short line per command.

use std::path::Path;
use std::process::Command;

use crate::common::CMS;

/// The subcommands `cms --help` lists (hidden ones and `help` aside).
fn commands() -> Vec<String> {
    let out = Command::new(CMS).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let listed = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("cms --help lists its commands");
    listed
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn every_command_has_a_line_in_the_readme_and_a_section_in_docs_commands() {
    let commands = commands();
    assert!(commands.len() > 20, "{commands:?}");
    let readme = read("README.md");
    let details = read("docs/commands.md");
    for name in &commands {
        let row = format!("| [`cms {name}`](docs/commands.md#cms-{name}) |");
        assert!(
            readme.contains(&row),
            "README's table has no line for cms {name}"
        );
        assert!(
            details.contains(&format!("\n## cms {name}\n")),
            "docs/commands.md has no section for cms {name}"
        );
    }
}

#[test]
fn the_readme_command_table_keeps_to_one_short_line_a_command() {
    let readme = read("README.md");
    let table = readme
        .lines()
        .skip_while(|line| *line != "| command | what it does |")
        .take_while(|line| line.starts_with('|'));
    for row in table {
        assert!(
            row.chars().count() <= 220,
            "a README command line of {} characters: {row}",
            row.chars().count()
        );
    }
}
