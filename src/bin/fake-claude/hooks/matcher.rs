//! Which tools a hook's `matcher` takes: every tool, a list of names, or a JavaScript regex.

/// How a hook's `matcher` picks tools, as in the real CLI: empty or `*` takes every tool, a
/// plain `A|B` list takes exactly those names, anything else is a regex searched in the name.
pub enum Matcher {
    All,
    Names(Vec<String>),
    Regex(Regex),
}

impl Matcher {
    pub fn new(matcher: Option<&str>) -> Result<Matcher, String> {
        Ok(match matcher {
            None | Some("" | "*") => Matcher::All,
            Some(list)
                if list
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
            {
                Matcher::Names(
                    list.split('|')
                        .filter(|name| !name.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            Some(pattern) => Matcher::Regex(Regex::parse(pattern)?),
        })
    }

    pub fn matches(&self, tool: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Names(names) => names.iter().any(|name| name == tool),
            Matcher::Regex(regex) => regex.is_match(tool),
        }
    }
}

/// The part of JavaScript's regex syntax a tool-name matcher needs: literals, `.`, classes
/// (with `\d`, `\w`, `\s`), groups, `|`, anchors and greedy or lazy quantifiers. Anything else
/// (lookaround, backreferences, `\b`) is refused rather than matched differently.
pub struct Regex(Node);

enum Node {
    Char(char),
    /// `.`: anything but a line terminator.
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Start,
    End,
    /// Alternatives, each a sequence.
    Group(Vec<Vec<Node>>),
    Repeat {
        node: Box<Node>,
        min: usize,
        max: Option<usize>,
        greedy: bool,
    },
}

const DIGITS: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
const SPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{feff}', '\u{feff}'),
];

struct RegexParser {
    chars: Vec<char>,
    pos: usize,
}

impl Regex {
    pub fn parse(pattern: &str) -> Result<Regex, String> {
        let mut parser = RegexParser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let alternatives = parser.alternatives()?;
        if parser.pos < parser.chars.len() {
            return Err("unmatched ')'".into());
        }
        Ok(Regex(Node::Group(alternatives)))
    }

    /// `RegExp.prototype.test`: a match anywhere in the text.
    fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        (0..=chars.len()).any(|start| match_node(&self.0, &chars, start, &|_| true))
    }
}

impl RegexParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        self.pos += usize::from(found);
        found
    }

    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alternatives = vec![self.sequence()?];
        while self.eat('|') {
            alternatives.push(self.sequence()?);
        }
        Ok(alternatives)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut sequence = Vec::new();
        while let Some(c) = self.peek().filter(|c| !matches!(c, '|' | ')')) {
            self.pos += 1;
            let atom = match c {
                '.' => Node::Any,
                '^' => Node::Start,
                '$' => Node::End,
                '(' => {
                    if self.eat('?') && !self.eat(':') {
                        return Err("lookaround and named groups are not supported".into());
                    }
                    let alternatives = self.alternatives()?;
                    if !self.eat(')') {
                        return Err("unterminated group".into());
                    }
                    Node::Group(alternatives)
                }
                '[' => self.class()?,
                '\\' => self.escape()?,
                '*' | '+' | '?' => return Err("nothing to repeat".into()),
                c => Node::Char(c),
            };
            let repeatable = !matches!(atom, Node::Start | Node::End);
            sequence.push(self.quantified(atom, repeatable)?);
        }
        Ok(sequence)
    }

    fn quantified(&mut self, atom: Node, repeatable: bool) -> Result<Node, String> {
        let start = self.pos;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => match self.braces() {
                Some(bounds) => bounds,
                // Annex B: a `{` that does not start a quantifier is a literal.
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if !repeatable {
            return Err("nothing to repeat".into());
        }
        if self.pos == start {
            self.pos += 1;
        }
        if max.is_some_and(|max| max < min) {
            return Err("numbers out of order in {} quantifier".into());
        }
        let greedy = !self.eat('?');
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
            greedy,
        })
    }

    /// `{n}`, `{n,}` or `{n,m}`, consumed only when it is one of those.
    fn braces(&mut self) -> Option<(usize, Option<usize>)> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let end = rest.find('}')?;
        let body = &rest[1..end];
        let number = |text: &str| -> Option<usize> {
            (!text.is_empty() && text.chars().all(|c| c.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        };
        let bounds = match body.split_once(',') {
            None => number(body).map(|n| (n, Some(n))),
            Some((min, "")) => number(min).map(|n| (n, None)),
            Some((min, max)) => number(min).zip(number(max)).map(|(a, b)| (a, Some(b))),
        }?;
        self.pos += rest[..=end].chars().count();
        Some(bounds)
    }

    fn escape(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("\\ at end of pattern")?;
        self.pos += 1;
        let class = |negated: bool, ranges: &[(char, char)]| Node::Class {
            negated,
            ranges: ranges.to_vec(),
        };
        Ok(match c {
            'd' => class(false, DIGITS),
            'D' => class(true, DIGITS),
            'w' => class(false, WORD),
            'W' => class(true, WORD),
            's' => class(false, SPACE),
            'S' => class(true, SPACE),
            c => Node::Char(escaped_char(c)?),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated character class")?;
            self.pos += 1;
            let low = match c {
                ']' => break,
                '\\' => {
                    let c = self.peek().ok_or("unterminated character class")?;
                    self.pos += 1;
                    match c {
                        'd' => {
                            ranges.extend_from_slice(DIGITS);
                            continue;
                        }
                        'w' => {
                            ranges.extend_from_slice(WORD);
                            continue;
                        }
                        's' => {
                            ranges.extend_from_slice(SPACE);
                            continue;
                        }
                        'D' | 'W' | 'S' => {
                            return Err(format!("\\{c} inside a class is not supported"));
                        }
                        c => escaped_char(c)?,
                    }
                }
                c => c,
            };
            let is_range = self.peek() == Some('-')
                && self
                    .chars
                    .get(self.pos + 1)
                    .is_some_and(|next| *next != ']');
            if !is_range {
                ranges.push((low, low));
                continue;
            }
            self.pos += 1;
            let high = match self.peek().ok_or("unterminated character class")? {
                '\\' => {
                    self.pos += 1;
                    let c = self.peek().ok_or("unterminated character class")?;
                    escaped_char(c)?
                }
                c => c,
            };
            self.pos += 1;
            if high < low {
                return Err("range out of order in character class".into());
            }
            ranges.push((low, high));
        }
        Ok(Node::Class { negated, ranges })
    }
}

/// The character an escape stands for; letters and digits with other meanings are refused.
fn escaped_char(c: char) -> Result<char, String> {
    match c {
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        't' => Ok('\t'),
        'f' => Ok('\u{c}'),
        'v' => Ok('\u{b}'),
        '0' => Ok('\0'),
        c if c.is_ascii_alphanumeric() => Err(format!("\\{c} is not supported")),
        c => Ok(c),
    }
}

/// Backtracking match of `node` at `pos`; `then` matches whatever follows it.
fn match_node(node: &Node, text: &[char], pos: usize, then: &dyn Fn(usize) -> bool) -> bool {
    let one =
        |test: &dyn Fn(char) -> bool| text.get(pos).is_some_and(|c| test(*c)) && then(pos + 1);
    match node {
        Node::Char(expected) => one(&|c| c == *expected),
        Node::Any => one(&|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')),
        Node::Class { negated, ranges } => {
            one(&|c| ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated)
        }
        Node::Start => pos == 0 && then(pos),
        Node::End => pos == text.len() && then(pos),
        Node::Group(alternatives) => alternatives
            .iter()
            .any(|sequence| match_sequence(sequence, text, pos, then)),
        Node::Repeat {
            node,
            min,
            max,
            greedy,
        } => match_repeat(node, (*min, *max, *greedy), text, pos, 0, then),
    }
}

fn match_sequence(
    sequence: &[Node],
    text: &[char],
    pos: usize,
    then: &dyn Fn(usize) -> bool,
) -> bool {
    match sequence.split_first() {
        None => then(pos),
        Some((first, rest)) => match_node(first, text, pos, &|next| {
            match_sequence(rest, text, next, then)
        }),
    }
}

fn match_repeat(
    node: &Node,
    (min, max, greedy): (usize, Option<usize>, bool),
    text: &[char],
    pos: usize,
    count: usize,
    then: &dyn Fn(usize) -> bool,
) -> bool {
    let again = || {
        max.is_none_or(|max| count < max)
            && match_node(node, text, pos, &|next| {
                // As in JavaScript, an iteration past the minimum must consume something.
                (next != pos || count < min)
                    && match_repeat(node, (min, max, greedy), text, next, count + 1, then)
            })
    };
    let stop = || count >= min && then(pos);
    let (first, second): (&dyn Fn() -> bool, &dyn Fn() -> bool) = if greedy {
        (&again, &stop)
    } else {
        (&stop, &again)
    };
    first() || second()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(matcher: Option<&str>, tool: &str) -> bool {
        Matcher::new(matcher).unwrap().matches(tool)
    }

    #[test]
    fn hook_matchers_take_every_tool_when_empty_missing_or_star() {
        for matcher in [None, Some(""), Some("*")] {
            assert!(matches(matcher, "Write"));
            assert!(matches(matcher, "Bash"));
        }
    }

    #[test]
    fn a_plain_hook_matcher_list_takes_exactly_the_names_it_lists() {
        let list = Some("Write|Edit|MultiEdit|NotebookEdit");
        for tool in ["Write", "Edit", "MultiEdit", "NotebookEdit"] {
            assert!(matches(list, tool), "{tool}");
        }
        // A regex search would take these; the real CLI compares plain lists exactly.
        for tool in ["Read", "Writer", "NotebookEditor", "write"] {
            assert!(!matches(list, tool), "{tool}");
        }
        assert!(matches(Some("Bash"), "Bash"));
        assert!(!matches(Some("Bash"), "BashOutput"));
    }

    #[test]
    fn other_hook_matchers_are_javascript_regexes_searched_in_the_tool_name() {
        let cases: &[(&str, &str, bool)] = &[
            ("Write|Ed.t", "Edit", true),
            ("Ed.t", "MultiEdit", true),
            ("^Ed.t$", "MultiEdit", false),
            ("^(Write|Edit)$", "Edit", true),
            ("^(?:Write|Edit)$", "Editor", false),
            ("Notebook.*", "NotebookEdit", true),
            ("mcp__.*__write", "mcp__fs__write", true),
            ("mcp__.*__write", "mcp__fs__read", false),
            ("^[A-Z][a-z]+$", "Bash", true),
            ("^[^B]", "Bash", false),
            ("^\\w+Edit$", "MultiEdit", true),
            ("^\\d", "Bash", false),
            ("^Bas?h$", "Bah", true),
            ("^(ab)+$", "ababab", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{2,}$", "aaaa", true),
            ("^a{2}$", "aa", true),
            ("^a+?b$", "aaab", true),
            ("^Edit\\.$", "Edit.", true),
            ("^Edit\\.$", "Edits", false),
            ("^$|x", "", true),
            ("^(a*)*b$", "aab", true),
        ];
        for (pattern, tool, expected) in cases {
            assert_eq!(
                matches(Some(pattern), tool),
                *expected,
                "/{pattern}/ on {tool}"
            );
        }
    }

    #[test]
    fn hook_matchers_this_fake_cannot_match_faithfully_are_refused() {
        for pattern in [
            "(?=Write)",
            "(a)\\1",
            "\\bWrite",
            "(Write",
            "Write)",
            "a|*",
            "a{3,2}",
        ] {
            assert!(Matcher::new(Some(pattern)).is_err(), "/{pattern}/");
        }
    }
}
