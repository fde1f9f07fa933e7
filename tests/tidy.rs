//! Tidy: the workspace's hygiene rules, checked on the source text in the style of
//! rust-analyzer's `tidy.rs` (issue 8, item 6). Each rule is one `#[test]` named after it that
//! fails with every violation as `file:line: rule`; each checker also has a unit test on an
//! inline snippet that breaks its rule, so a checker that silently matches nothing fails too.
//!
//! The rules:
//! - **no file circles**: no two files of one crate import each other, directly or through a
//!   cycle (`use crate::…` and `crate::…` paths, the text before `#[cfg(test)]`; the algorithm
//!   of `shared/tools/file_circles.py`);
//! - **wire types only at the edge**: only [`BUREAU_PROTO_ALLOWED`] mention `yibao_proto` in the
//!   bureau crate, and [`PROTO_FREE_CRATES`] do not mention it at all;
//! - **file headers**: every Rust file opens with a `//!` comment;
//! - **no long functions**: no function over [`MAX_FUNCTION_LINES`] lines in a crate's `src`
//!   unless a comment saying [`LONG_BECAUSE`] is just above it;
//! - **no `bool` parameters** in the bureau crate: a call `save(…, true)` does not say what
//!   `true` means;
//! - **stored rows never default**: a row that fails to decode is an error, never a default;
//! - **money moves only as a machine's action**: in the bureau crate, journal postings are made
//!   only where the drivers perform the actions their state machines returned
//!   ([`POSTING_ALLOWED`]), so no step can move money the machine did not ask for.
//!
//! The checks read text, not a syntax tree: comments, strings and character literals are blanked
//! first ([`mask`]) so that braces and names inside them do not count, and `#[cfg(test)]` items
//! are skipped where a rule is about production code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The files of `crates/bureau` (relative to the crate) that may mention `yibao_proto`: the API
/// handlers, the one conversion module between wire and domain, and the outbox transport. A `*`
/// matches within one path segment.
const BUREAU_PROTO_ALLOWED: &[&str] = &[
    "src/api.rs",
    "src/api/*.rs",
    "src/api/*/tests.rs",
    "src/convert.rs",
    // The deterministic simulation (tests only) plays the network between two bureaus.
    "src/sim.rs",
    "src/outbox/transport.rs",
];

/// The files of `crates/bureau` that may post to the journal: the two drivers (each posting is
/// an arm of the `match` over the machine's actions), `record.rs` (where `Step::post` writes
/// the posting) and the admin API's seeding (opening balances, not a transfer).
const POSTING_ALLOWED: &[&str] = &[
    "src/transfer_out.rs",
    "src/transfer_in.rs",
    "src/record.rs",
    "src/api/admin.rs",
    // Test-only files (declared under `#[cfg(test)]` where they are included): seeding.
    "src/testing.rs",
    "src/*/tests.rs",
    "src/*/*/tests.rs",
];

/// Crates that must not mention `yibao_proto` anywhere, nor depend on it.
const PROTO_FREE_CRATES: &[&str] = &["domain", "store", "runtime"];

/// The directories of each crate whose Rust files need a `//!` header (besides `tests/` at the
/// workspace root).
const HEADER_DIRS: &[&str] = &["src", "tests", "examples", "benches"];

/// The longest a function in a crate's `src` may be, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 70;

/// What a comment just above a longer function says to explain why it is long.
const LONG_BECAUSE: &str = "Long because";

/// How many lines above the `fn` line the [`LONG_BECAUSE`] comment may be.
const LONG_BECAUSE_WINDOW: usize = 5;

/// Crates whose `src` may have no `bool` parameters.
const NO_BOOL_PARAMETER_CRATES: &[&str] = &["bureau"];

/// Crates whose `src` reads stored rows, where a failed decode must be an error.
const STORED_ROW_CRATES: &[&str] = &["bureau", "store"];

/// Calls that decode a stored row.
const DECODE_CALLS: &[&str] = &[
    "serde_json::from_str",
    "serde_json::from_slice",
    "::decode(",
];

/// What turns a failed decode into a default when it follows one in the same statement.
const DEFAULTING: &[&str] = &[".unwrap_or_default()", ".unwrap_or(", ".ok()"];

// ---------------------------------------------------------------------------------------------
// The rules, over the workspace.

#[test]
fn no_file_circles() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for name in crate_names(&root) {
        let src = root.join("crates").join(&name).join("src");
        let files: Vec<(String, String)> = rust_files(&src)
            .into_iter()
            .map(|path| (relative(&src, &path), read(&path)))
            .collect();
        for mut violation in file_circles(&files) {
            violation.file = format!("crates/{name}/src/{}", violation.file);
            violations.push(violation);
        }
    }
    assert_clean("file circles", violations);
}

#[test]
fn yibao_proto_only_at_the_edge() {
    let root = workspace_root();
    let mut violations = Vec::new();
    let bureau = root.join("crates/bureau");
    for path in rust_files(&bureau.join("src")) {
        let in_crate = relative(&bureau, &path);
        if !BUREAU_PROTO_ALLOWED
            .iter()
            .any(|pattern| glob_matches(pattern, &in_crate))
        {
            let file = format!("crates/bureau/{in_crate}");
            violations.extend(proto_mentions(&file, &read(&path)));
        }
    }
    for name in PROTO_FREE_CRATES {
        let dir = root.join("crates").join(name);
        for path in rust_files(&dir) {
            let file = relative(&root, &path);
            violations.extend(proto_mentions(&file, &read(&path)));
        }
        let manifest = dir.join("Cargo.toml");
        let file = relative(&root, &manifest);
        violations.extend(proto_dependencies(&file, &read(&manifest)));
    }
    assert_clean("yibao_proto outside the edge", violations);
}

#[test]
fn money_moves_only_as_a_machine_action() {
    let bureau = workspace_root().join("crates/bureau");
    let mut violations = Vec::new();
    for path in rust_files(&bureau.join("src")) {
        let in_crate = relative(&bureau, &path);
        if !POSTING_ALLOWED
            .iter()
            .any(|pattern| glob_matches(pattern, &in_crate))
        {
            let file = format!("crates/bureau/{in_crate}");
            violations.extend(postings(&file, &read(&path)));
        }
    }
    assert_clean("postings outside the drivers' actions", violations);
}

#[test]
fn every_file_has_a_header() {
    let root = workspace_root();
    let mut paths = rust_files(&root.join("tests"));
    for name in crate_names(&root) {
        for dir in HEADER_DIRS {
            paths.extend(rust_files(&root.join("crates").join(&name).join(dir)));
        }
    }
    let violations = paths
        .iter()
        .flat_map(|path| missing_header(&relative(&root, path), &read(path)))
        .collect();
    assert_clean("file headers", violations);
}

#[test]
fn no_long_functions() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for name in crate_names(&root) {
        for path in rust_files(&root.join("crates").join(&name).join("src")) {
            violations.extend(long_functions(&relative(&root, &path), &read(&path)));
        }
    }
    assert_clean("long functions", violations);
}

#[test]
fn no_bool_parameters() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for name in NO_BOOL_PARAMETER_CRATES {
        for path in rust_files(&root.join("crates").join(name).join("src")) {
            violations.extend(bool_parameters(&relative(&root, &path), &read(&path)));
        }
    }
    assert_clean("bool parameters", violations);
}

#[test]
fn stored_rows_never_default() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for name in STORED_ROW_CRATES {
        for path in rust_files(&root.join("crates").join(name).join("src")) {
            violations.extend(defaulted_decodes(&relative(&root, &path), &read(&path)));
        }
    }
    assert_clean("decodes that default", violations);
}

// ---------------------------------------------------------------------------------------------
// The checkers, over one file's text (or one crate's files), so that each can be tested on a
// snippet.

/// A broken rule at a place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    /// The file, relative to the workspace root (to the crate's `src` from [`file_circles`]).
    file: String,
    /// 1-based.
    line: usize,
    /// What is wrong.
    rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.rule)
    }
}

/// File circles among one crate's files, given as (path relative to `src`, text): one violation
/// per import that closes a circle, at the line of its first `crate::` path.
fn file_circles(files: &[(String, String)]) -> Vec<Violation> {
    let modules: BTreeMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(index, (path, _))| (module_path(path), index))
        .collect();
    // module → module it imports → line of the first such import
    let mut edges: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (module, &index) in &modules {
        let text = files[index].1.split("#[cfg(test)]").next().unwrap_or("");
        let imports = edges.entry(module.as_str()).or_default();
        for (line, path) in crate_paths(text) {
            let Some(target) = resolve(&modules, &path) else {
                continue;
            };
            let ancestor = module.starts_with(&format!("{target}::"));
            if target != module && !target.is_empty() && !ancestor {
                imports.entry(target).or_insert(line);
            }
        }
    }
    let mut violations = Vec::new();
    for component in strongly_connected(&edges) {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let names = members.iter().copied().collect::<Vec<_>>().join(", ");
        for &module in &members {
            for (&target, &line) in &edges[module] {
                if members.contains(target) {
                    violations.push(Violation {
                        file: files[modules[module]].0.clone(),
                        line,
                        rule: format!("file circle ({names}): imports `crate::{target}`"),
                    });
                }
            }
        }
    }
    violations
}

/// A file's module path from its path relative to `src`: `sqlite/reader.rs` is
/// `sqlite::reader`, `lib.rs` is the empty root, `api/mod.rs` is `api`.
fn module_path(path: &str) -> String {
    let mut parts: Vec<&str> = path.trim_end_matches(".rs").split('/').collect();
    if matches!(parts.last(), Some(&("mod" | "lib" | "main"))) {
        parts.pop();
    }
    parts.join("::")
}

/// The longest prefix of `path` that is a file's module, if any.
fn resolve<'a>(modules: &'a BTreeMap<String, usize>, path: &str) -> Option<&'a str> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        if let Some((module, _)) = modules.get_key_value(&parts.join("::")) {
            return Some(module);
        }
        parts.pop();
    }
    None
}

/// Every path after `crate::` in the text (comments included, as the script reads them), with
/// its line; a brace group is expanded, so `crate::a::{b, c::D}` gives `a::b` and `a::c::D`.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut paths = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let start = at + "crate::".len();
        let mut end = start;
        while end < bytes.len() && (is_ident(bytes[end]) || bytes[end] == b':') {
            end += 1;
        }
        if end < bytes.len() && bytes[end] == b'{' {
            end = matching(bytes, end, b'{', b'}').map_or(bytes.len(), |close| close + 1);
        }
        let line = line_of(text, at);
        for path in expand_use_tree("", &text[start..end]) {
            paths.push((line, path));
        }
    }
    paths
}

/// The paths a use tree names: `a::{b, c::{d, e}}` under `prefix`.
fn expand_use_tree(prefix: &str, tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let join = |path: &str| {
        let path = path.trim_matches(':');
        match (prefix.is_empty(), path.is_empty() || path == "self") {
            (_, true) => prefix.to_owned(),
            (true, false) => path.to_owned(),
            (false, false) => format!("{prefix}::{path}"),
        }
    };
    let Some(open) = tree.find('{') else {
        let path = tree.split_whitespace().next().unwrap_or("");
        return vec![join(path)];
    };
    let head = join(&tree[..open]);
    let close = matching(tree.as_bytes(), open, b'{', b'}').unwrap_or(tree.len());
    split_top_level(&tree[open + 1..close], b',')
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(|item| expand_use_tree(&head, item))
        .collect()
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn strongly_connected<'a>(
    edges: &BTreeMap<&'a str, BTreeMap<&'a str, usize>>,
) -> Vec<Vec<&'a str>> {
    struct Tarjan<'e, 'a> {
        edges: &'e BTreeMap<&'a str, BTreeMap<&'a str, usize>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'_, 'a> {
        fn visit(&mut self, v: &'a str) {
            let index = self.index.len();
            self.index.insert(v, index);
            self.low.insert(v, index);
            self.stack.push(v);
            self.on_stack.insert(v);
            let targets: Vec<&'a str> = self
                .edges
                .get(v)
                .into_iter()
                .flatten()
                .map(|(w, _)| *w)
                .collect();
            for w in targets {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.components.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for &v in edges.keys() {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.components
}

/// Every line whose code (not comments or strings) mentions `yibao_proto`.
fn proto_mentions(file: &str, text: &str) -> Vec<Violation> {
    mask(text)
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains("yibao_proto"))
        .map(|(index, _)| Violation {
            file: file.to_owned(),
            line: index + 1,
            rule: "mentions `yibao_proto` (wire types belong at the edge)".to_owned(),
        })
        .collect()
}

/// Every line whose code (outside `#[cfg(test)]`) posts to the journal: `.post(` or
/// `Posting {`.
fn postings(file: &str, text: &str) -> Vec<Violation> {
    let code = mask(text);
    let tests = cfg_test_ranges(&code);
    let mut offset = 0;
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let posts = line.contains(".post(") || line.contains("Posting {");
        if posts && !within(&tests, offset) {
            found.push(Violation {
                file: file.to_owned(),
                line: index + 1,
                rule: "posts to the journal outside a driver's action (money moves only as a \
                       state machine's action)"
                    .to_owned(),
            });
        }
        offset += line.len() + 1;
    }
    found
}

/// Every line of a manifest that names the `yibao-proto` package outside a comment.
fn proto_dependencies(file: &str, manifest: &str) -> Vec<Violation> {
    manifest
        .lines()
        .enumerate()
        .filter(|(_, line)| line.split('#').next().unwrap_or("").contains("yibao-proto"))
        .map(|(index, _)| Violation {
            file: file.to_owned(),
            line: index + 1,
            rule: "depends on `yibao-proto` (wire types belong at the edge)".to_owned(),
        })
        .collect()
}

/// A violation if the first non-blank line does not open with `//!`.
fn missing_header(file: &str, text: &str) -> Option<Violation> {
    let first = text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty());
    match first {
        Some((_, line)) if line.trim_start().starts_with("//!") => None,
        found => Some(Violation {
            file: file.to_owned(),
            line: found.map_or(1, |(index, _)| index + 1),
            rule: "the file does not open with a `//!` comment saying what it is".to_owned(),
        }),
    }
}

/// Functions outside `#[cfg(test)]` items longer than [`MAX_FUNCTION_LINES`] with no
/// [`LONG_BECAUSE`] comment in the [`LONG_BECAUSE_WINDOW`] lines above their `fn` line.
fn long_functions(file: &str, text: &str) -> Vec<Violation> {
    let code = mask(text);
    let tests = cfg_test_ranges(&code);
    let lines: Vec<&str> = text.lines().collect();
    let mut violations = Vec::new();
    for function in functions(&code) {
        let Some((_, close)) = function.body else {
            continue;
        };
        if within(&tests, function.start) {
            continue;
        }
        let first = line_of(&code, function.start);
        let length = line_of(&code, close) - first + 1;
        let above = &lines[first.saturating_sub(1 + LONG_BECAUSE_WINDOW)..first - 1];
        let explained = above.iter().any(|line| {
            line.find("//")
                .is_some_and(|at| line[at..].contains(LONG_BECAUSE))
        });
        if length > MAX_FUNCTION_LINES && !explained {
            violations.push(Violation {
                file: file.to_owned(),
                line: first,
                rule: format!(
                    "`{}` is {length} lines (over {MAX_FUNCTION_LINES}): split it, or say why \
                     in a \"{LONG_BECAUSE} …\" comment above it",
                    function.name
                ),
            });
        }
    }
    violations
}

/// Parameters typed `bool` of functions outside `#[cfg(test)]` items.
fn bool_parameters(file: &str, text: &str) -> Vec<Violation> {
    let code = mask(text);
    let tests = cfg_test_ranges(&code);
    let mut violations = Vec::new();
    for function in functions(&code) {
        if within(&tests, function.start) {
            continue;
        }
        let (open, close) = function.parameters;
        let mut offset = open + 1;
        for parameter in split_top_level(&code[open + 1..close], b',') {
            let typed_bool = colon_at_top_level(parameter).is_some_and(|colon| {
                let typed = parameter[colon + 1..].trim();
                let typed = typed.strip_prefix('&').unwrap_or(typed).trim_start();
                let typed = typed.strip_prefix("mut ").unwrap_or(typed).trim();
                typed == "bool"
            });
            if typed_bool {
                let at = offset + parameter.len() - parameter.trim_start().len();
                violations.push(Violation {
                    file: file.to_owned(),
                    line: line_of(&code, at),
                    rule: format!(
                        "`{}` takes a `bool` parameter (`{}`): name the choice with an enum",
                        function.name,
                        parameter.trim()
                    ),
                });
            }
            offset += parameter.len() + 1;
        }
    }
    violations
}

/// Decodes ([`DECODE_CALLS`]) outside `#[cfg(test)]` items that a [`DEFAULTING`] call follows
/// in the same statement (or argument, or closure body).
fn defaulted_decodes(file: &str, text: &str) -> Vec<Violation> {
    let code = mask(text);
    let bytes = code.as_bytes();
    let tests = cfg_test_ranges(&code);
    let mut violations = Vec::new();
    for call in DECODE_CALLS {
        for (at, _) in code.match_indices(call) {
            if within(&tests, at) {
                continue;
            }
            let mut depth = 0_usize;
            let mut index = at + call.trim_end_matches('(').len();
            while index < bytes.len() {
                let rest = &bytes[index..];
                if depth == 0
                    && let Some(defaulting) =
                        DEFAULTING.iter().find(|d| rest.starts_with(d.as_bytes()))
                {
                    violations.push(Violation {
                        file: file.to_owned(),
                        line: line_of(&code, at),
                        rule: format!(
                            "`{}` then `{defaulting}`: a row that fails to decode must be an \
                             error, never a default",
                            call.trim_matches(|c| c == ':' || c == '(')
                        ),
                    });
                    break;
                }
                match bytes[index] {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' if depth == 0 => break,
                    b')' | b']' | b'}' => depth -= 1,
                    b';' | b',' if depth == 0 => break,
                    _ => {}
                }
                index += 1;
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// Reading Rust text.

/// The text with comments, string literals and character literals blanked: every character of
/// them but a newline becomes a space, so lines stay where they were and what is left is code.
fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_or_comment_end(&chars, i);
        if end > i {
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends (exclusive); `i` when none starts there.
fn literal_or_comment_end(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..chars.len())
            .find(|&k| chars[k] == '\n')
            .unwrap_or(chars.len()),
        ('/', '*') => {
            let (mut depth, mut k) = (0_usize, i);
            while k < chars.len() {
                if at(k) == '/' && at(k + 1) == '*' {
                    depth += 1;
                    k += 2;
                } else if at(k) == '*' && at(k + 1) == '/' {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    k += 1;
                }
            }
            k.min(chars.len())
        }
        _ if after_ident => i,
        ('b', 'r') | ('r', '"') | ('r', '#') => {
            let mut k = if at(i) == 'b' { i + 2 } else { i + 1 };
            let hashes = (k..chars.len()).take_while(|&h| chars[h] == '#').count();
            k += hashes;
            if at(k) != '"' {
                return i; // a raw identifier or a plain name
            }
            k += 1;
            while k < chars.len() {
                if chars[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                    return k + 1 + hashes;
                }
                k += 1;
            }
            chars.len()
        }
        ('"', _) | ('b', '"') => {
            let mut k = if at(i) == 'b' { i + 2 } else { i + 1 };
            while k < chars.len() {
                match chars[k] {
                    '\\' => k += 2,
                    '"' => return k + 1,
                    _ => k += 1,
                }
            }
            chars.len()
        }
        ('\'', _) | ('b', '\'') => {
            let open = if at(i) == 'b' { i + 1 } else { i };
            if at(open + 1) == '\\' {
                let close = (open + 3..chars.len()).find(|&k| chars[k] == '\'');
                close.map_or(chars.len(), |k| k + 1)
            } else if at(open + 2) == '\'' {
                open + 3
            } else {
                i // a lifetime or a label
            }
        }
        _ => i,
    }
}

/// A function found in masked code.
#[derive(Debug)]
struct Function {
    name: String,
    /// Where its `fn` keyword is.
    start: usize,
    /// Its parameter list's parentheses.
    parameters: (usize, usize),
    /// Its body's braces; none for a declaration without a body.
    body: Option<(usize, usize)>,
}

/// Every `fn name(…)` in masked code, nested ones included.
fn functions(code: &str) -> Vec<Function> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (start, _) in code.match_indices("fn") {
        let before_ok = start == 0 || !is_ident(bytes[start - 1]);
        let after = start + 2;
        if !before_ok || !bytes.get(after).is_some_and(u8::is_ascii_whitespace) {
            continue;
        }
        let name_start = skip_whitespace(bytes, after);
        let mut name_end = name_start;
        while name_end < bytes.len() && is_ident(bytes[name_end]) {
            name_end += 1;
        }
        if name_end == name_start {
            continue;
        }
        let mut index = skip_whitespace(bytes, name_end);
        if bytes.get(index) == Some(&b'<') {
            let Some(close) = matching_angle(bytes, index) else {
                continue;
            };
            index = skip_whitespace(bytes, close + 1);
        }
        if bytes.get(index) != Some(&b'(') {
            continue;
        }
        let Some(parameters_close) = matching(bytes, index, b'(', b')') else {
            continue;
        };
        let body = body_of(bytes, parameters_close + 1);
        found.push(Function {
            name: code[name_start..name_end].to_owned(),
            start,
            parameters: (index, parameters_close),
            body,
        });
    }
    found
}

/// The braces of the body that follows a signature from `from`: the first `{` outside
/// parentheses and brackets, unless a `;` comes first.
fn body_of(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut depth = 0_usize;
    for (index, &byte) in bytes.iter().enumerate().skip(from) {
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => return None,
            b'{' if depth == 0 => {
                return matching(bytes, index, b'{', b'}').map(|close| (index, close));
            }
            _ => {}
        }
    }
    None
}

/// The byte ranges of the items that follow `#[cfg(test)]` (a module, a function, an impl …).
fn cfg_test_ranges(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    code.match_indices("#[cfg(test)]")
        .map(|(start, attribute)| {
            let from = start + attribute.len();
            let mut depth = 0_usize;
            for (index, &byte) in bytes.iter().enumerate().skip(from) {
                match byte {
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => depth = depth.saturating_sub(1),
                    b';' if depth == 0 => return (start, index),
                    b'{' if depth == 0 => {
                        let close = matching(bytes, index, b'{', b'}').unwrap_or(bytes.len());
                        return (start, close);
                    }
                    _ => {}
                }
            }
            (start, bytes.len())
        })
        .collect()
}

fn within(ranges: &[(usize, usize)], at: usize) -> bool {
    ranges
        .iter()
        .any(|&(start, end)| (start..=end).contains(&at))
}

/// The index of the delimiter that closes the one at `open`.
fn matching(bytes: &[u8], open: usize, opening: u8, closing: u8) -> Option<usize> {
    let mut depth = 0_usize;
    for (index, &byte) in bytes.iter().enumerate().skip(open) {
        if byte == opening {
            depth += 1;
        } else if byte == closing {
            depth -= 1;
            if depth == 0 {
                return Some(index);
            }
        }
    }
    None
}

/// The `>` that closes the generics opening at `open` (an arrow's `>` does not count).
fn matching_angle(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0_usize;
    for (index, &byte) in bytes.iter().enumerate().skip(open) {
        match byte {
            b'<' => depth += 1,
            b'>' if index > 0 && bytes[index - 1] == b'-' => {}
            b'>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// `text` split at each `separator` outside (), [], {} and <> (an arrow's `>` does not count).
fn split_top_level(text: &str, separator: u8) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b'>' if index > 0 && bytes[index - 1] == b'-' => {}
            b')' | b']' | b'}' | b'>' => depth -= 1,
            _ if byte == separator && depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The first `:` of a parameter outside brackets that is not half of a `::`.
fn colon_at_top_level(parameter: &str) -> Option<usize> {
    let bytes = parameter.as_bytes();
    let mut depth = 0_i32;
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b')' | b']' | b'}' | b'>' => depth -= 1,
            b':' if depth == 0 => {
                let doubled =
                    bytes.get(index + 1) == Some(&b':') || (index > 0 && bytes[index - 1] == b':');
                if !doubled {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

fn skip_whitespace(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() && bytes[index].is_ascii_whitespace() {
        index += 1;
    }
    index
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

// ---------------------------------------------------------------------------------------------
// The workspace.

/// The parent of the tests crate: `CARGO_MANIFEST_DIR` as Cargo sets it when running the test
/// (so the binary can check another checkout), else as it was at build time.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("the tests crate lives in the workspace root")
        .to_path_buf()
}

/// The directory names under `crates/`, sorted.
fn crate_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("crates"))
        .expect("read crates/")
        .map(|entry| entry.expect("read crates/"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The `.rs` files under `dir` (none if it does not exist), sorted, skipping `target`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// `path` relative to `base`, with `/` separators.
fn relative(base: &Path, path: &Path) -> String {
    let inner = path.strip_prefix(base).expect("a path under its base");
    let parts: Vec<String> = inner
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Whether `path` matches `pattern`, where a `*` matches within one path segment.
fn glob_matches(pattern: &str, path: &str) -> bool {
    let patterns: Vec<&str> = pattern.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    patterns.len() == parts.len()
        && patterns
            .iter()
            .zip(&parts)
            .all(|(pattern, part)| match pattern.split_once('*') {
                None => pattern == part,
                Some((prefix, suffix)) => {
                    part.len() >= prefix.len() + suffix.len()
                        && part.starts_with(prefix)
                        && part.ends_with(suffix)
                }
            })
}

fn assert_clean(what: &str, mut violations: Vec<Violation>) {
    violations.sort();
    violations.dedup();
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        panic!("{} {what}:\n{}\n", violations.len(), list.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Each checker catches what it is for.

#[test]
fn the_file_circle_checker_catches_a_circle_through_three_files() {
    let files = vec![
        (
            "lib.rs".to_owned(),
            "mod a;\nmod b;\nuse crate::a::A;\n".to_owned(),
        ),
        ("a.rs".to_owned(), "//! A.\n\nuse crate::b::B;\n".to_owned()),
        (
            "b.rs".to_owned(),
            "//! B.\nuse crate::{c::{self, C}, Error};\n".to_owned(),
        ),
        (
            "c/mod.rs".to_owned(),
            "//! C.\nfn f() -> crate::a::A { todo!() }\n".to_owned(),
        ),
        (
            "d.rs".to_owned(),
            "//! D, tests only.\n#[cfg(test)]\nuse crate::a::A;\n".to_owned(),
        ),
    ];
    let violations = file_circles(&files);
    let found: Vec<(&str, usize)> = violations
        .iter()
        .map(|v| (v.file.as_str(), v.line))
        .collect();
    assert_eq!(found, [("a.rs", 3), ("b.rs", 2), ("c/mod.rs", 2)]);
    assert!(
        violations[0].rule.contains("(a, b, c)"),
        "{}",
        violations[0]
    );
}

#[test]
fn the_file_circle_checker_accepts_a_child_importing_its_parent() {
    let files = vec![
        (
            "sqlite.rs".to_owned(),
            "use crate::sqlite::tx::Tx;\n".to_owned(),
        ),
        (
            "sqlite/tx.rs".to_owned(),
            "use crate::sqlite::Options;\n".to_owned(),
        ),
    ];
    assert_eq!(file_circles(&files), []);
}

#[test]
fn the_proto_checker_catches_an_import_but_not_a_comment() {
    let text = "//! Docs about yibao_proto.\nuse yibao_proto::common::v1::Money; // yibao_proto\n\
                fn f() { let s = \"yibao_proto\"; }\nfn g(x: yibao_proto::X) {}\n";
    let lines: Vec<usize> = proto_mentions("f.rs", text)
        .iter()
        .map(|v| v.line)
        .collect();
    assert_eq!(lines, [2, 4]);
    let manifest = "[dependencies]\n# not yibao-proto\nyibao-proto.workspace = true\n";
    let lines: Vec<usize> = proto_dependencies("Cargo.toml", manifest)
        .iter()
        .map(|v| v.line)
        .collect();
    assert_eq!(lines, [3]);
    assert!(glob_matches("src/api/*.rs", "src/api/platform.rs"));
    assert!(!glob_matches("src/api/*.rs", "src/api/x/platform.rs"));
    assert!(!glob_matches("src/api.rs", "src/apis.rs"));
}

#[test]
fn the_posting_checker_catches_a_posting_but_not_a_test_or_comment() {
    let text = "//! Moves money.\nfn f(step: &mut Step) { step.post(m); } // .post(\n\
                fn g(tx: &mut dyn Tx) { tx.post(&Posting { amount_cents: 1 }); }\n\
                #[cfg(test)]\nmod tests { fn t() { tx.post(&p); } }\n";
    let lines: Vec<usize> = postings("f.rs", text).iter().map(|v| v.line).collect();
    assert_eq!(lines, [2, 3]);
}

#[test]
fn the_header_checker_catches_a_file_without_one() {
    assert_eq!(
        missing_header("f.rs", "\n  \n//! What this is.\nfn f() {}\n"),
        None
    );
    let missing = missing_header("f.rs", "\n// Not a module comment.\n//! Too late.\n");
    assert_eq!(missing.map(|v| v.line), Some(2));
    assert!(missing_header("f.rs", "").is_some());
}

#[test]
fn the_long_function_checker_catches_a_long_function() {
    let body = |n: usize| "    let x = \"}\"; // }\n".repeat(n);
    let long = format!("//! Long.\n\nfn long() -> u32 {{\n{}    0\n}}\n", body(68));
    let violations = long_functions("f.rs", &long);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].line, 3);
    assert!(
        violations[0].rule.contains("`long` is 71 lines"),
        "{}",
        violations[0]
    );

    let just_fits = format!("fn fits() {{\n{}}}\n", body(68));
    assert_eq!(long_functions("f.rs", &just_fits), []);
    let explained = format!("// Long because it is a table.\n///\n/// Docs.\n{long}");
    let explained = explained.replacen("//! Long.\n", "", 1);
    assert_eq!(long_functions("f.rs", &explained), []);
    let too_far = format!(
        "// Long because …\n\n\n\n\n\n{}",
        long.replacen("//! Long.\n", "", 1)
    );
    assert_eq!(long_functions("f.rs", &too_far).len(), 1);
    let in_tests = format!("#[cfg(test)]\nmod tests {{\n{long}}}\n");
    assert_eq!(long_functions("f.rs", &in_tests), []);
}

#[test]
fn the_bool_parameter_checker_catches_a_bool_parameter() {
    let text = "impl S {\n    pub fn f<F: Fn(u32) -> bool>(&self, x: u32,\n        new: bool) {}\n}\n\
                fn g(f: impl Fn(u32) -> bool, flags: Vec<bool>) -> bool { true }\n\
                fn h(x: crate::Flag) {}\n\
                #[cfg(test)]\nmod tests {\n    fn t(ok: bool) {}\n}\n";
    let violations = bool_parameters("f.rs", text);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].line, 3);
    assert!(violations[0].rule.contains("`f`"), "{}", violations[0]);
    assert!(
        violations[0].rule.contains("`new: bool`"),
        "{}",
        violations[0]
    );
}

#[test]
fn the_bool_parameter_checker_sees_through_references() {
    let text = "fn f(flag: &bool) {}\nfn g(flag: &mut bool) {}\nfn h(flag: &Boolish) {}\n";
    let lines: Vec<usize> = bool_parameters("f.rs", text)
        .iter()
        .map(|v| v.line)
        .collect();
    assert_eq!(lines, [1, 2]);
}

#[test]
fn the_decode_checker_catches_a_defaulted_decode() {
    let text = "fn f(row: &Row) -> Result<Doc, Error> {\n\
                let a: Vec<u32> = serde_json::from_str(&row.a)\n        .unwrap_or_default();\n\
                let b = rows.iter().map(|r| serde_json::from_slice(r).ok()).collect();\n\
                let c = Message::decode(bytes.as_slice()).unwrap_or(Message::default());\n\
                let d: Doc = serde_json::from_str(&row.d)?;\n\
                let e = Doc { d: serde_json::from_str(&row.d)?, e: x.ok() };\n\
                let f = serde_json::from_str::<u32>(&row.f.get(0).unwrap_or(\"0\"))?;\n\
                Ok(d)\n}\n";
    let lines: Vec<usize> = defaulted_decodes("f.rs", text)
        .iter()
        .map(|v| v.line)
        .collect();
    assert_eq!(lines, [2, 4, 5]);
}

#[test]
fn masking_blanks_comments_strings_and_chars_but_keeps_lifetimes_and_lines() {
    let text = "fn f<'a>(x: &'a str) -> char { // {\n    /* { /* } */ { */ let s = r#\"{\"#;\n    \
                let b = b\"{\\\"\"; '{' }\nfn g() -> char { '\\'' }\n";
    let code = mask(text);
    assert_eq!(code.lines().count(), text.lines().count());
    assert!(code.contains("<'a>(x: &'a str)"), "{code}");
    assert_eq!(code.matches('{').count(), 2, "{code}");
    assert_eq!(code.matches('}').count(), 2, "{code}");
    let names: Vec<String> = functions(&code).into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["f", "g"]);
}
