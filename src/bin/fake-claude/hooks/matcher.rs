//! Which tools a hook's `matcher` takes: every tool, a list of names, or a JavaScript regex.

use regex_automata::meta::Regex;
use regex_syntax::ast::parse::Parser;
use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassPerlKind, ClassSet, ClassSetItem, GroupKind, HexLiteralKind,
    LiteralKind, RepetitionKind, RepetitionRange, Span, SpecialLiteralKind,
};
use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, Look, Repetition};

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
            Some(pattern) => Matcher::Regex(javascript_regex(pattern)?),
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

/// Compiles a matcher as the real CLI's `new RegExp(matcher)` reads it (no flags): the pattern is
/// parsed with Rust's regex syntax, every construct is given its JavaScript meaning (`.`, `\d`,
/// `\w` and `\s` are JavaScript's sets, `^` and `$` the ends of the name), and a pattern the two
/// dialects read differently is refused rather than matched differently.
fn javascript_regex(pattern: &str) -> Result<Regex, String> {
    let pattern = &escape_literal_braces(pattern);
    let ast = Parser::new()
        .parse(pattern)
        .map_err(|err| err.kind().to_string())?;
    let hir = JavaScript { pattern }.hir(&ast)?;
    Regex::builder()
        .build_from_hir(&hir)
        .map_err(|err| err.to_string())
}

/// Escapes each `{` that does not start a `{n}`, `{n,}` or `{n,m}` quantifier, which JavaScript
/// (Annex B) reads as a literal and Rust as a broken or a looser (`{,n}`, `{ n }`) quantifier.
fn escape_literal_braces(pattern: &str) -> String {
    let mut escaped = String::with_capacity(pattern.len());
    let mut chars = pattern.char_indices();
    let mut in_class = false;
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                escaped.push(c);
                if let Some((_, next)) = chars.next() {
                    escaped.push(next);
                }
                continue;
            }
            // As in JavaScript, a `]` right after `[` or `[^` closes the (empty) class.
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class && !starts_quantifier(&pattern[at..]) => escaped.push('\\'),
            _ => {}
        }
        escaped.push(c);
    }
    escaped
}

fn starts_quantifier(text: &str) -> bool {
    let Some(end) = text.find('}') else {
        return false;
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text[1..end].split_once(',') {
        None => digits(&text[1..end]),
        Some((min, max)) => digits(min) && (max.is_empty() || digits(max)),
    }
}

/// What JavaScript's `.` excludes: the line terminators.
const LINE_TERMINATORS: &[(char, char)] = &[('\n', '\n'), ('\r', '\r'), ('\u{2028}', '\u{2029}')];
const DIGITS: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
/// JavaScript's `\s`: its WhiteSpace and LineTerminator characters.
const SPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
    ('\u{feff}', '\u{feff}'),
];

fn set(ranges: &[(char, char)]) -> ClassUnicode {
    ClassUnicode::new(
        ranges
            .iter()
            .map(|(low, high)| ClassUnicodeRange::new(*low, *high)),
    )
}

fn negated(mut class: ClassUnicode) -> ClassUnicode {
    class.negate();
    class
}

/// Rust regex syntax, read with JavaScript's meaning.
struct JavaScript<'a> {
    pattern: &'a str,
}

impl JavaScript<'_> {
    fn refuse(&self, span: &Span) -> String {
        let text = &self.pattern[span.start.offset..span.end.offset];
        format!("{text} is not JavaScript regex syntax this fake can match faithfully")
    }

    fn hir(&self, ast: &Ast) -> Result<Hir, String> {
        Ok(match ast {
            Ast::Empty(_) => Hir::empty(),
            Ast::Literal(literal) => {
                Hir::literal(self.char(literal)?.encode_utf8(&mut [0; 4]).as_bytes())
            }
            Ast::Dot(_) => Hir::class(Class::Unicode(negated(set(LINE_TERMINATORS)))),
            Ast::Assertion(assertion) => match assertion.kind {
                // Without the `m` flag they are the ends of the text, as in Rust without it.
                AssertionKind::StartLine => Hir::look(Look::Start),
                AssertionKind::EndLine => Hir::look(Look::End),
                // Rust's word-boundary `\<` and `\>` are identity escapes in JavaScript.
                AssertionKind::WordBoundaryStartAngle => Hir::literal("<".as_bytes()),
                AssertionKind::WordBoundaryEndAngle => Hir::literal(">".as_bytes()),
                // `\b` (JavaScript's is ASCII), `\A`, `\z`, `\<`: refused.
                _ => return Err(self.refuse(&assertion.span)),
            },
            Ast::ClassPerl(perl) => Hir::class(Class::Unicode(perl_class(perl))),
            Ast::ClassBracketed(class) => Hir::class(Class::Unicode(self.bracketed(class)?)),
            Ast::Repetition(repetition) => {
                // JavaScript has nothing to repeat after `^`, `$` or another quantifier.
                if matches!(*repetition.ast, Ast::Assertion(_) | Ast::Repetition(_)) {
                    return Err("nothing to repeat".into());
                }
                let (min, max) = match repetition.op.kind {
                    RepetitionKind::ZeroOrOne => (0, Some(1)),
                    RepetitionKind::ZeroOrMore => (0, None),
                    RepetitionKind::OneOrMore => (1, None),
                    RepetitionKind::Range(RepetitionRange::Exactly(n)) => (n, Some(n)),
                    RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (n, None),
                    RepetitionKind::Range(RepetitionRange::Bounded(min, max)) => (min, Some(max)),
                };
                Hir::repetition(Repetition {
                    min,
                    max,
                    greedy: repetition.greedy,
                    sub: Box::new(self.hir(&repetition.ast)?),
                })
            }
            Ast::Group(group) => match &group.kind {
                GroupKind::CaptureIndex(_) => self.hir(&group.ast)?,
                GroupKind::NonCapturing(flags) if flags.items.is_empty() => self.hir(&group.ast)?,
                // Named groups (Rust's `(?P<…>` is no JavaScript) and inline flags.
                _ => return Err(self.refuse(&group.span)),
            },
            Ast::Alternation(alternation) => Hir::alternation(self.all(&alternation.asts)?),
            Ast::Concat(concat) => Hir::concat(self.all(&concat.asts)?),
            // Inline flags, and `\p{…}`, which JavaScript reads as `p{…}` without the `u` flag.
            Ast::Flags(flags) => return Err(self.refuse(&flags.span)),
            Ast::ClassUnicode(class) => return Err(self.refuse(&class.span)),
        })
    }

    fn all(&self, asts: &[Ast]) -> Result<Vec<Hir>, String> {
        asts.iter().map(|ast| self.hir(ast)).collect()
    }

    /// The escapes both dialects read as the same character.
    fn char(&self, literal: &ast::Literal) -> Result<char, String> {
        match &literal.kind {
            LiteralKind::Verbatim
            | LiteralKind::Meta
            | LiteralKind::Superfluous
            | LiteralKind::HexFixed(HexLiteralKind::X | HexLiteralKind::UnicodeShort)
            | LiteralKind::Special(
                SpecialLiteralKind::FormFeed
                | SpecialLiteralKind::Tab
                | SpecialLiteralKind::LineFeed
                | SpecialLiteralKind::CarriageReturn
                | SpecialLiteralKind::VerticalTab,
            ) => Ok(literal.c),
            // `\a`, `\x{…}`, `\U…`, octal: other characters (or errors) in JavaScript.
            _ => Err(self.refuse(&literal.span)),
        }
    }

    fn bracketed(&self, class: &ast::ClassBracketed) -> Result<ClassUnicode, String> {
        // JavaScript reads `[]` as a class of nothing and `[^]` as any character; Rust takes a
        // `]` first in a class as a literal.
        let text = &self.pattern[class.span.start.offset..];
        if text.starts_with("[]") || text.starts_with("[^]") {
            return Err(format!(
                "{text} starts with an empty class, which Rust reads otherwise"
            ));
        }
        let ClassSet::Item(item) = &class.kind else {
            // `&&`, `--` and `~~` are set operations in Rust and literals in JavaScript.
            return Err(self.refuse(&class.span));
        };
        let mut set = self.class_item(item)?;
        if class.negated {
            set.negate();
        }
        Ok(set)
    }

    fn class_item(&self, item: &ClassSetItem) -> Result<ClassUnicode, String> {
        Ok(match item {
            ClassSetItem::Empty(_) => ClassUnicode::empty(),
            ClassSetItem::Literal(literal) => {
                let c = self.char(literal)?;
                set(&[(c, c)])
            }
            ClassSetItem::Range(range) => {
                set(&[(self.char(&range.start)?, self.char(&range.end)?)])
            }
            ClassSetItem::Perl(perl) => perl_class(perl),
            ClassSetItem::Union(union) => {
                let mut set = ClassUnicode::empty();
                for item in &union.items {
                    set.union(&self.class_item(item)?);
                }
                set
            }
            // A nested `[`, `[:alpha:]` and `\p{…}` are literal text in JavaScript.
            ClassSetItem::Bracketed(class) => return Err(self.refuse(&class.span)),
            ClassSetItem::Ascii(class) => return Err(self.refuse(&class.span)),
            ClassSetItem::Unicode(class) => return Err(self.refuse(&class.span)),
        })
    }
}

/// `\d`, `\w` and `\s` as JavaScript defines them (ASCII digits and word characters).
fn perl_class(perl: &ast::ClassPerl) -> ClassUnicode {
    let class = set(match perl.kind {
        ClassPerlKind::Digit => DIGITS,
        ClassPerlKind::Word => WORD,
        ClassPerlKind::Space => SPACE,
    });
    if perl.negated { negated(class) } else { class }
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    fn matches(matcher: Option<&str>, tool: &str) -> bool {
        Matcher::new(matcher).unwrap().matches(tool)
    }

    /// Each `(pattern, tool, whether the pattern takes the tool)`.
    fn check(cases: &[(&str, &str, bool)]) {
        for (pattern, tool, expected) in cases {
            assert_eq!(
                matches(Some(pattern), tool),
                *expected,
                "/{pattern}/ on {tool:?}"
            );
        }
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
        check(&[
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
        ]);
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
            // Rust syntax with another meaning, or none, in JavaScript.
            "(?i)write",
            "\\pL",
            "(?P<name>Write)",
            "[[:alpha:]]",
            "[a&&b]",
            "[]a]",
            "\\A",
            "\\z",
            "a{2}{3}",
        ] {
            assert!(Matcher::new(Some(pattern)).is_err(), "/{pattern}/");
        }
    }

    #[test]
    fn hook_matchers_read_dot_and_class_escapes_as_javascript_does() {
        check(&[
            // `.` stops only at line terminators.
            ("^a.b$", "a\rb", false),
            ("^a.b$", "a\u{2028}b", false),
            ("^a.b$", "a\u{85}b", true),
            // `\d` and `\w` are ASCII, `\s` takes Unicode spaces.
            ("\\d", "\u{663}", false),
            ("\\w", "\u{e9}", false),
            ("^\\W$", "\u{e9}", true),
            ("^\\s$", "\u{3000}", true),
            ("^\\s$", "\u{feff}", true),
            ("^[^\\s]$", "\u{a0}", false),
            // Escapes JavaScript reads as the character.
            ("^\\x41\\u0042$", "AB", true),
            ("^\\<\\>$", "<>", true),
        ]);
    }

    #[test]
    fn a_brace_that_starts_no_quantifier_is_a_literal_as_in_javascript() {
        check(&[
            ("^a{$", "a{", true),
            ("^{$", "{", true),
            ("^x{,3}$", "x{,3}", true),
            ("^x{,3}$", "xx", false),
            ("^a{2, 3}$", "a{2, 3}", true),
            ("^a{2, 3}$", "aa", false),
            ("^a{2}$", "aa", true),
            ("^a{2}$", "a{2}", false),
            ("^[{]a{1}$", "{a", true),
        ]);
    }
}
