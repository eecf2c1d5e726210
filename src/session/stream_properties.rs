//! Property tests of the stream-json parser and the ledger on claude output that is random,
//! truncated, reordered or has numbers no real CLI would print: whatever the lines, nothing
//! panics, and the ledger's cost and turns never go negative or backwards.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value;

use super::ledger::Ledger;
use super::protocol::Event;

/// Every line of every recorded sample of the real CLI, of every release recorded (`samples/`
/// and the folders named after later releases).
fn sample_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-protocol");
        let mut files: Vec<_> = std::fs::read_dir(&root)
            .expect("the fixtures directory")
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.is_dir())
            .flat_map(|dir| std::fs::read_dir(dir).expect("a samples directory"))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|path| {
                let text = std::fs::read_to_string(path).expect("a readable sample");
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    })
}

/// What the driver hands the ledger: a line, or the start of another claude process.
#[derive(Debug, Clone)]
enum Input {
    Line(String),
    NewProcess,
}

/// A number where a sample has one: any integer, any finite float, or the edges of the types
/// the protocol reads them into.
fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Counts that overflow a u32 once added up.
        (u64::from(u32::MAX / 2)..=u64::from(u32::MAX)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(Value::from),
        select(vec![
            Value::from(-1),
            Value::from(-0.5),
            Value::from(u64::from(u32::MAX)),
            Value::from(u64::from(u32::MAX) + 1),
            Value::from(u64::MAX),
        ]),
    ]
}

/// The sample line with one of its numbers replaced by `number`.
fn with_number(line: &str, which: Index, number: Value) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    let mut numbers = Vec::new();
    collect_numbers(&mut value, &mut numbers);
    if !numbers.is_empty() {
        *numbers.swap_remove(which.index(numbers.len())) = number;
    }
    value.to_string()
}

fn collect_numbers<'a>(value: &'a mut Value, numbers: &mut Vec<&'a mut Value>) {
    match value {
        Value::Number(_) => numbers.push(value),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| collect_numbers(item, numbers)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| collect_numbers(item, numbers)),
        _ => {}
    }
}

fn truncated(line: &str, at: Index) -> String {
    let mut end = at.index(line.len() + 1);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

fn input() -> impl Strategy<Value = Input> {
    let line = select(sample_lines());
    prop_oneof![
        6 => line.clone().prop_map(Input::Line),
        2 => (line.clone(), any::<Index>()).prop_map(|(line, at)| Input::Line(truncated(&line, at))),
        3 => (line, any::<Index>(), any_number())
            .prop_map(|(line, which, number)| Input::Line(with_number(&line, which, number))),
        1 => any::<String>().prop_map(Input::Line),
        1 => Just(Input::NewProcess),
    ]
}

/// Feeds `inputs` to a ledger and checks after each one that the totals stay sane.
fn check_ledger(inputs: &[Input]) -> Result<(), TestCaseError> {
    let mut ledger = Ledger::default();
    ledger.start_process();
    for input in inputs {
        let (cost, turns) = (ledger.cost_usd, ledger.turns);
        match input {
            Input::Line(line) => ledger.observe(&Event::parse(line)),
            Input::NewProcess => ledger.start_process(),
        }
        prop_assert!(
            ledger.cost_usd >= cost,
            "cost fell from {cost} to {}",
            ledger.cost_usd
        );
        prop_assert!(
            ledger.cost_usd >= 0.0,
            "cost {} after {input:?}",
            ledger.cost_usd
        );
        prop_assert!(ledger.live_cost_usd() >= 0.0, "live cost after {input:?}");
        prop_assert!(
            ledger.turns >= turns,
            "turns fell from {turns} to {}",
            ledger.turns
        );
    }
    Ok(())
}

proptest! {
    // Modest, so the suite stays quick on two cores (about half a second): each case is up to
    // 60 lines. Thousands of cases found nothing more than these once the ledger was fixed.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_lines_in_any_order_leave_cost_and_turns_non_negative_and_non_decreasing(
        inputs in prop::collection::vec(input(), 0..60),
    ) {
        check_ledger(&inputs)?;
    }

    #[test]
    fn a_real_session_reordered_leaves_cost_and_turns_non_negative_and_non_decreasing(
        inputs in Just(sample_lines().iter().cloned().map(Input::Line).collect::<Vec<_>>())
            .prop_shuffle(),
    ) {
        check_ledger(&inputs)?;
    }
}
