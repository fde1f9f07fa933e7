//! Fuzzing by property (issue 10, item 6): the region directory (`deploy/regions.toml`) is
//! given arbitrary text, the shipped file with characters and whole lines changed, and
//! generated files of nearly valid entries. The loader may not panic; it answers with a
//! directory that keeps its rules or an error naming the line (TOML syntax and shape) or the
//! region and field (a broken rule). The settings file's properties (`config::fuzz`) share the
//! text strategies here.
//!
//! These are `proptest` properties rather than cargo-fuzz targets (which need a nightly
//! toolchain); all are named `fuzz_…`, run 256 cases by default and `PROPTEST_CASES` raises that.

use proptest::prelude::*;

use crate::directory::{DirectoryError, RegionDirectory};

/// The shipped region directory.
const SHIPPED_DIRECTORY: &str = include_str!("../../../deploy/regions.toml");

/// Arbitrary text: any Unicode, arbitrary bytes read lossily, any ASCII, TOML's punctuation,
/// and deeply nested arrays and tables.
pub(crate) fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..128)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        "[\\x00-\\x7f]{0,80}",
        "[a-z_\\[\\]{}=\"'.,#0-9 \n-]{0,120}",
        (1usize..2000).prop_map(|depth| format!("a = {}{}", "[".repeat(depth), "]".repeat(depth))),
        (1usize..2000).prop_map(|depth| format!(
            "a = {}{}",
            "{b=".repeat(depth),
            "}".repeat(depth)
        )),
        (1usize..500).prop_map(|depth| format!("[{}]", vec!["a"; depth].join("."))),
    ]
}

/// A character an edit puts in: TOML's punctuation, a digit, a control or wide character, or
/// any character at all.
fn edit_character() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(vec![
            '[', ']', '{', '}', '=', '"', '\'', '.', ',', '#', '\n', ' ', '\t', '\0', '\u{7f}',
            '\\', '-', '0', '1', '9', 'x', '中', '\u{3000}',
        ]),
        any::<char>(),
    ]
}

/// One edit of a file: of a character, or of a whole line.
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    /// Replace the character at the position.
    Replace(usize, char),
    /// Insert a character before the position.
    Insert(usize, char),
    /// Remove the character at the position.
    Remove(usize),
    /// Remove a line.
    RemoveLine(usize),
    /// Repeat a line just after itself.
    RepeatLine(usize),
    /// Swap two lines.
    SwapLines(usize, usize),
}

/// One to six edits.
pub(crate) fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), edit_character()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), edit_character()).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::RemoveLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ];
    proptest::collection::vec(edit, 1..7)
}

/// `text` with `edits` applied; positions are taken modulo the length.
pub(crate) fn edited(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        let mut characters: Vec<char> = text.chars().collect();
        let mut lines: Vec<&str> = text.lines().collect();
        let (count, rows) = (characters.len(), lines.len());
        text = match *edit {
            Edit::Replace(at, c) if count > 0 => {
                characters[at % count] = c;
                characters.into_iter().collect()
            }
            Edit::Insert(at, c) => {
                characters.insert(at % (count + 1), c);
                characters.into_iter().collect()
            }
            Edit::Remove(at) if count > 0 => {
                characters.remove(at % count);
                characters.into_iter().collect()
            }
            Edit::RemoveLine(at) if rows > 0 => {
                lines.remove(at % rows);
                lines.join("\n")
            }
            Edit::RepeatLine(at) if rows > 0 => {
                lines.insert(at % rows, lines[at % rows]);
                lines.join("\n")
            }
            Edit::SwapLines(a, b) if rows > 0 => {
                lines.swap(a % rows, b % rows);
                lines.join("\n")
            }
            _ => text,
        };
    }
    text
}

/// A `[[region]]` table of nearly valid fields, some missing.
fn region_table() -> impl Strategy<Value = String> {
    let code = prop_oneof![
        proptest::sample::select(vec![
            "150100", "540100", "440300", "110000", "110105", "999999"
        ]),
        Just("15010"),
        Just("１50100"),
    ];
    let name = proptest::sample::select(vec!["Hohhot", "Lhasa", "Nowhere", "", " "]);
    let name_zh = proptest::sample::select(vec!["呼和浩特市", "拉萨市", "", "某市"]);
    let bureau = proptest::sample::select(vec![
        "",
        "bureau = \"transfer-out\"\n",
        "bureau = \"transfer-in\"\n",
        "bureau = \"both\"\n",
        "bureau = \"Not A Name\"\n",
    ]);
    let connected = proptest::sample::select(vec![
        "connected = true\n",
        "connected = false\n",
        "",
        "connected = 1\n",
    ]);
    let policy = proptest::sample::select(vec![
        "",
        "[region.policy]\ninstant_mode = true\n",
        "[region.policy]\nback_pay_window_months = 9\n",
        "[region.policy]\nno_such_key = 1\n",
        "[region.policy]\nminimum_contribution_months = { male = 0 }\n",
        "policy = 3\n",
    ]);
    (code, name, name_zh, bureau, connected, policy).prop_map(
        |(code, name, name_zh, bureau, connected, policy)| {
            format!(
                "[[region]]\ncode = \"{code}\"\nname = \"{name}\"\nname_zh = \"{name_zh}\"\n\
                 {bureau}{connected}{policy}"
            )
        },
    )
}

/// Checks that a TOML error names its line, or is the parser's nesting limit, which has none
/// and says so.
pub(crate) fn located(message: &str) -> Result<(), TestCaseError> {
    let line =
        message.contains("at line ") || message.contains("recursion limit; it names no line");
    prop_assert!(line, "no line in {:?}", message);
    Ok(())
}

/// Parses a directory and checks the answer: an accepted directory keeps its rules; a refused
/// one names the line, or the region and field.
fn check_directory(text: &str) -> Result<(), TestCaseError> {
    match RegionDirectory::parse(text) {
        Ok(directory) => {
            prop_assert!(!directory.is_empty());
            for entry in directory.regions() {
                prop_assert_eq!(directory.pooling_region(entry.code), entry.code);
                prop_assert_eq!(entry.policy.validate(), Ok(()));
                prop_assert!(!entry.name.trim().is_empty() && !entry.name_zh.trim().is_empty());
            }
        }
        Err(DirectoryError::Syntax { message }) => located(&message)?,
        Err(DirectoryError::Invalid { region, field, .. }) => {
            prop_assert!(!region.is_empty() && !field.is_empty());
        }
        Err(DirectoryError::Empty) => {}
        Err(error) => prop_assert!(false, "unexpected {}", error),
    }
    Ok(())
}

proptest! {
    #[test]
    fn fuzz_directory_any_text(text in any_text()) {
        check_directory(&text)?;
    }

    #[test]
    fn fuzz_directory_near_the_shipped_file(edits in edits()) {
        check_directory(&edited(SHIPPED_DIRECTORY, &edits))?;
    }

    #[test]
    fn fuzz_directory_generated_entries(
        tables in proptest::collection::vec(region_table(), 0..5),
    ) {
        check_directory(&tables.concat())?;
    }
}
