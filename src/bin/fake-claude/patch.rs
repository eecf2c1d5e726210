//! The `structuredPatch` of a Write or an Edit, in the real CLI's hunk format.

use crate::output::Json;
use crate::output::Obj;

/// Lines of unchanged context around each hunk of a `structuredPatch`, as in the real CLI.
const CONTEXT: usize = 3;
/// Above this many cells the quadratic line diff gives way to one replace-everything hunk.
const MAX_DIFF_CELLS: usize = 4_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Keep,
    Remove,
    Add,
}

/// Line diff with removals before additions, the order jsdiff (used by the real CLI) prints.
fn diff_lines<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Change, &'a str)> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let a = &old[prefix..old.len() - suffix];
    let b = &new[prefix..new.len() - suffix];
    let mut changes: Vec<(Change, &str)> =
        old[..prefix].iter().map(|l| (Change::Keep, *l)).collect();
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        changes.extend(a.iter().map(|l| (Change::Remove, *l)));
        changes.extend(b.iter().map(|l| (Change::Add, *l)));
    } else {
        // common[i][j]: length of the longest common subsequence of a[i..] and b[j..].
        let mut common = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for (i, line_a) in a.iter().enumerate().rev() {
            for (j, line_b) in b.iter().enumerate().rev() {
                common[i][j] = if line_a == line_b {
                    common[i + 1][j + 1] + 1
                } else {
                    common[i + 1][j].max(common[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                changes.push((Change::Keep, a[i]));
                i += 1;
                j += 1;
            } else if j == b.len() || (i < a.len() && common[i + 1][j] >= common[i][j + 1]) {
                changes.push((Change::Remove, a[i]));
                i += 1;
            } else {
                changes.push((Change::Add, b[j]));
                j += 1;
            }
        }
    }
    changes.extend(old[old.len() - suffix..].iter().map(|l| (Change::Keep, *l)));
    changes
}

pub fn structured_patch(old: &str, new: &str) -> Json {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let changes = diff_lines(&old_lines, &new_lines);
    // Changes separated by at most 2 * CONTEXT unchanged lines share a hunk.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, _) in changes
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != Change::Keep)
    {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + 1 + CONTEXT).min(changes.len());
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    let counts =
        |slice: &[(Change, &str)], skip: Change| slice.iter().filter(|(c, _)| *c != skip).count();
    Json::array(ranges.into_iter().map(|(start, end)| {
        let body = &changes[start..end];
        let lines: Vec<String> = body
            .iter()
            .map(|(change, line)| {
                let mark = match change {
                    Change::Keep => ' ',
                    Change::Remove => '-',
                    Change::Add => '+',
                };
                format!("{mark}{line}")
            })
            .collect();
        Obj::new()
            .field("oldStart", counts(&changes[..start], Change::Add) + 1)
            .field("oldLines", counts(body, Change::Add))
            .field("newStart", counts(&changes[..start], Change::Remove) + 1)
            .field("newLines", counts(body, Change::Remove))
            .field("lines", lines)
            .end()
    }))
}
