//! The `structuredPatch` of a Write or an Edit, in the real CLI's hunk format.

use similar::{Algorithm, ChangeTag, capture_diff_slices, group_diff_ops};

use crate::output::{Json, Obj};

/// Lines of unchanged context around each hunk, as in the real CLI; changes at most twice as
/// many unchanged lines apart share a hunk.
const CONTEXT: usize = 3;

/// The hunks jsdiff's `structuredPatch` (which the real CLI uses) gives for the two texts'
/// lines: a Myers diff, with each change's removals before its additions.
pub fn structured_patch(old: &str, new: &str) -> Json {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let ops = capture_diff_slices(Algorithm::Myers, &old_lines, &new_lines);
    Json::array(group_diff_ops(ops, CONTEXT).into_iter().map(|hunk| {
        let (Some(first), Some(last)) = (hunk.first(), hunk.last()) else {
            unreachable!("similar never makes an empty hunk");
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let lines: Vec<String> = hunk
            .iter()
            .flat_map(|op| op.iter_changes(&old_lines, &new_lines))
            .map(|change| {
                let mark = match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                };
                format!("{mark}{}", change.value())
            })
            .collect();
        Obj::new()
            .field("oldStart", old_range.start + 1)
            .field("oldLines", old_range.len())
            .field("newStart", new_range.start + 1)
            .field("newLines", new_range.len())
            .field("lines", lines)
            .end()
    }))
}

#[cfg(test)]
mod tests {
    use super::structured_patch;

    #[test]
    fn an_edited_line_gives_the_hunk_the_real_cli_recorded() {
        // samples/tools_bypass.jsonl, the Edit's structuredPatch.
        let patch = structured_patch(
            "line one\nold value\nline three\n",
            "line one\nnew value\nline three\n",
        );
        assert_eq!(
            patch.0,
            r#"[{"oldStart":1,"oldLines":3,"newStart":1,"newLines":3,"lines":[" line one","-old value","+new value"," line three"]}]"#
        );
    }

    #[test]
    fn changes_more_than_six_unchanged_lines_apart_get_hunks_of_their_own() {
        let text = |changed: &[usize]| -> String {
            (1..=20)
                .map(|n| {
                    if changed.contains(&n) {
                        format!("changed {n}\n")
                    } else {
                        format!("{n}\n")
                    }
                })
                .collect()
        };
        let old = text(&[]);
        // Lines 3 to 8 (six) unchanged between the changes, then seven (3 to 9).
        let (near, far) = (text(&[2, 9]), text(&[2, 10]));
        let hunks = |new: &str| {
            let patch: serde_json::Value =
                serde_json::from_str(&structured_patch(&old, new).0).expect("a patch is JSON");
            patch.as_array().map_or(0, Vec::len)
        };
        assert_eq!(hunks(&near), 1);
        assert_eq!(hunks(&far), 2);
        assert_eq!(hunks(&old), 0);
    }
}
