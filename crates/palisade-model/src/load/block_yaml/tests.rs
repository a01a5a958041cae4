//! The reader against saphyr: on what it takes, the same documents.

use super::*;
use crate::load::yaml::parse_yaml_documents;

/// The reader takes `text` and gives what saphyr gives.
#[track_caller]
fn same(text: &str) {
    let fast = parse_documents(text).unwrap_or_else(|| panic!("declined:\n{text}"));
    let Ok(saphyr) = parse_yaml_documents(text) else { panic!("saphyr refuses:\n{text}") };
    assert_eq!(fast, saphyr, "\n{text}");
}

/// If the reader takes `text`, it gives what saphyr gives.
#[track_caller]
fn agrees(text: &str) {
    if let Some(fast) = parse_documents(text) {
        let Ok(saphyr) = parse_yaml_documents(text) else { panic!("saphyr refuses:\n{text}") };
        assert_eq!(fast, saphyr, "\n{text}");
    }
}

/// The reader leaves `text` to saphyr.
#[track_caller]
fn declined(text: &str) {
    assert!(parse_documents(text).is_none(), "accepted: {text:?}");
}

#[test]
fn kubectl_and_pyyaml_output() {
    same(
        "apiVersion: v1\nkind: PodList\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n    labels: {app: x, tier: web}\n  spec:\n    containers:\n    - name: main\n      ports: &id001\n      - {containerPort: 80, name: http}\n  status: {phase: Running, podIP: 10.244.0.10}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n  spec:\n    containers:\n    - name: main\n      ports: *id001\n",
    );
    same("items:\n  - a: 1\n    b: [1, 2, '3']\n  -   c: \"x\"\n  - - 1\n    - 2\n  -\n    d: e\n  - *x\n".replace("*x", "&x f").as_str());
    same("# c\n---\nkind: List\nitems:\n- {kind: A}\n-   kind: B\n---\n---\n{\"kind\": \"C\"}\n");
    same("a:\n  b:\n    c: 1\n  d: 2 # comment\ne: 'it''s' # c\nf: \"a\\\"b\\\\c\\n\"\ng: [a, {b: c}, [d]]\nh: {}\ni: []\n");
}

#[test]
fn scalars_resolve_as_saphyr_resolves_them() {
    for value in [
        "on",
        "yes",
        "80",
        "-1",
        "0x1f",
        "0o17",
        "1.5",
        ".inf",
        "-.inf",
        ".nan",
        "~",
        "null",
        "Null",
        "true",
        "True",
        "FALSE",
        "1e3",
        "+1",
        "0",
        "00",
        "1_000",
        "a:b",
        "http://x:80/y",
        "a,b",
        "a]b",
        "-a",
        "?a",
        ":a",
        "a #b",
        "'q'",
        "\"q\"",
        "''",
        "a'b",
        "10.0.0.0/8",
        "2001:db8::/32",
        "nginx:1.14.2",
    ] {
        same(&format!("k: {value}\n"));
        same(&format!("- {value}\n"));
        same(&format!("{value}: v\n"));
        agrees(&format!("k: [{value}]\n"));
        agrees(&format!("k: {{{value}: x}}\n"));
        agrees(&format!("k: {{x: {value}}}\n"));
    }
}

#[test]
fn positions_of_documents_and_items() {
    same("\n\n  kind: List\n  items:\n    - {kind: A}\n    - kind: B\n      x: 1\n    -   [1]\n    - 'q'\n    - *a\n".replace("*a", "7").as_str());
    same("kind: List\nitems: [{kind: A}, {kind: B}, &a x, *a]\n");
    same("kind: List\nitems:\n- &a\n  kind: B\n- &b [1, &c x]\n");
    same("kind: List\nitems: &l\n- &i [1]\n- *i\nother: *l\n");
    same("- a\n- b\n...\n---\nx\n--- # c\n\"y\"\n");
}

/// Deep nesting is left to saphyr, which does not recurse: the reader's stack stays bounded.
#[test]
fn deep_nesting_is_declined() {
    let block: String = (0..5000).map(|depth| format!("{}- \n", " ".repeat(2 * depth))).collect::<String>() + "x\n";
    let mapping: String = (0..5000).map(|depth| format!("{}k:\n", " ".repeat(2 * depth))).collect::<String>() + "x\n";
    let flow = format!("a: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    for text in [&block, &mapping, &flow] {
        declined(text);
    }
    let nested = (0..MAX_DEPTH / 2).fold("x".to_string(), |inner, _| format!("[{inner}]"));
    same(&format!("a: {nested}\n"));
}

#[test]
fn text_that_is_not_ascii() {
    same("kind: List\nitems: [é, {a: ü}, 日本語, &a→ x, *a→]\nnote: 'ça va'\n\"clé\": \"valeur été\"\nx: |\n  ligne été\n");
    same("kind: List\nitems:\n- é: 1\n  ü: [ä, &ö ß]\n- 'ünïcödé\n  wrapped'\n- *ö\n");
    for text in ["a: \u{85}\n", "a: \u{2028}\n", "\u{feff}a: 1\n", "a: b\u{7f}\n"] {
        declined(text);
    }
}

#[test]
fn wrapped_scalars() {
    // How PyYAML and go-yaml wrap long strings.
    same("a: a long\n  plain   scalar  \n\n  with an empty line\nb: 'quoted ''and''\n  wrapped'\nc: \"double\n\n\n    quoted\\n\"\n");
    same("kind: List\nitems:\n- a\n  b\n- 'c\n  d'\n- x: 'y\n\n   z'\n");
    same(
        "description: APIVersion defines the versioned schema of this representation\n  of an object. Servers should convert recognized schemas to the latest internal\n  value, and may reject unrecognized values.\n",
    );
}

#[test]
fn literal_block_scalars() {
    same("a: |\n  line 1\n    more\n\n  # not a comment\n\n\nb: |-\n   x\n   y\n# comment\nc: &s |\n  z\nd: *s\n");
    same("kind: List\nitems:\n- |\n  text\n- |-\n    text\n  # comment\n- x\n");
    same("- command:\n  - sh\n  - -c\n  - |\n    set -e\n    echo \"$A\" > /tmp/x\n  image: busybox\n");
}

#[test]
fn outside_the_subset_or_wrong() {
    for text in [
        "a: |+\n  text\n\n",
        "a: |2\n   text\n",
        "a: |\n\n  text\n",
        "a: |\n  text\n   \n",
        "a: |\n  text",
        "a: |\nb: 1\n",
        "|\n  root\n",
        "a: |\n    x\n  y\n",
        "a: >\n  text\n",
        "a: plain # comment\n  continued\n",
        "a: plain\n  # comment\n  continued\n",
        "a: plain\n  - continued\n",
        "a: plain\n  continued: no\n",
        "a: 'quoted\ncontinued'\n",
        "a: \"escaped \\\n  break\"\n",
        "a: [1,\n  2]\n",
        "plain\n continued\n",
        "'quoted\n continued'\n",
        "a: [1,\n  2]\n",
        "a: !!str 1\n",
        "%YAML 1.2\n---\na: 1\n",
        "? a\n: b\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: 1\na: 2\n",
        "a: {b: 1, b: 2}\n",
        "a: b: c\n",
        "a:\n- 1\n b: 2\n",
        "- a\nb: 1\n",
        "a: 1\n- b\n",
        "a: *unknown\n",
        "a: [1, 2,]\n",
        "a: [b: c]\n",
        "a: {b}\n",
        "- \n- a\n",
        "a: \"\\u0041\"\n",
        "--- a\n",
        "a: 1\n  b: 2\n",
        "&a b: c\n",
        "a: &x 1\nb: &y *x\n",
        "a: &x 1\nb: [&y *x]\n",
        "a: &x 1\nb: &y\n  *x\n",
        // saphyr refuses implicit keys longer than 1024 characters.
        &format!("{}: v\n", "k".repeat(1030)),
        &format!("'{}': v\n", "k".repeat(1030)),
        &format!("- {}: v\n", "k".repeat(1030)),
        "- &a b: c\n",
    ] {
        declined(text);
    }
}

/// Every YAML file of the repository (examples, test data): what the reader takes, it reads
/// as saphyr does; and it takes the examples, manifests as users write them.
#[test]
fn files_of_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (mut examples, mut taken) = (0, 0);
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') && name != "target" && name != "out" {
                pending.push(path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                agrees(&text);
                if path.starts_with(root.join("examples")) {
                    examples += 1;
                    taken += usize::from(parse_documents(&text).is_some());
                }
            }
        }
    }
    assert!(examples >= 5, "examples/ has {examples} YAML files");
    assert_eq!(taken, examples, "the reader left some examples to saphyr");
}

/// Documents written the way tools write them, from random trees, in random styles; and
/// the same trees written carelessly (plain scalars that need quotes, aliases of anchors
/// not yet closed, stray indentation): whatever the reader takes must be saphyr's reading.
mod generated {
    use proptest::prelude::*;

    use super::{agrees, parse_yaml_documents, same};

    #[derive(Clone, Debug)]
    enum Tree {
        Scalar(String),
        Map(Vec<(String, Tree)>),
        Seq(Vec<Tree>),
    }

    /// Scalars that resolve to something other than a string, or that need quoting.
    const TRICKY: &[&str] = &[
        "",
        "on",
        "yes",
        "80",
        "-1",
        "0x1f",
        "1.5",
        ".inf",
        "~",
        "null",
        "true",
        "1e3",
        "a:b",
        "a: b",
        "a #b",
        "#a",
        "-",
        "- a",
        "-a",
        "?",
        "? a",
        ":",
        "a,b",
        "[a",
        "{a",
        "a]",
        "'",
        "\"",
        "a'b",
        "a\"b",
        "a\\b",
        "&a",
        "*a",
        "!a",
        "|",
        ">",
        "%a",
        "@a",
        "`a",
        " a",
        "a ",
        "---",
        "...",
        "items",
        "kind",
        "10.0.0.0/8",
        "nginx:1.14.2",
        // Several lines: literal block scalars, or escapes.
        // Not ASCII: columns count characters.
        "é",
        "日本語 テキスト",
        "a→b",
        "emoji 🎉 x",
        "ü: x",
        "a\nb",
        "a\n",
        "a\n\nb\n",
        "a\n  b\n",
        "#!/bin/sh\nset -e\n",
        "a\n\n",
        "\na",
        " a\nb",
        "a\n \nb",
        "a \nb",
    ];

    /// What the mangling test inserts (`""`: removes a character).
    const EDITS: &[&str] = &["", " ", "  ", "\n", "-", "- ", ":", ": ", "#", " #", "'", "\"", "&a1 ", "*a1", "[", "]", "{", "}", ",", "---\n", "...\n", "|\n", "\\", "é", "\u{85}", "\u{feff}"];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![proptest::sample::select(TRICKY).prop_map(str::to_string), "[a-z][a-z0-9-]{0,6}", "[ -~]{0,6}", "[a-z]{1,4}( [a-z0-9]{1,4}){1,4}",]
    }

    fn tree() -> impl Strategy<Value = Tree> {
        text().prop_map(Tree::Scalar).prop_recursive(4, 48, 5, |inner| {
            prop_oneof![proptest::collection::btree_map(text(), inner.clone(), 0..5).prop_map(|map| Tree::Map(map.into_iter().collect())), proptest::collection::vec(inner, 0..5).prop_map(Tree::Seq),]
        })
    }

    /// Picks styles; `careful` writes only valid YAML.
    struct Writer {
        seed: u64,
        careful: bool,
        anchors: usize,
        out: String,
    }

    impl Writer {
        fn roll(&mut self, sides: u64) -> u64 {
            // xorshift: the styles follow from the seed proptest shrinks.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            self.seed % sides
        }

        fn scalar(&mut self, text: &str) -> String {
            // Words that start with a letter or digit, one space between them.
            let simple = text.split(' ').all(|word| word.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            match self.roll(4) {
                0 if simple || !self.careful => text.to_string(),
                1 => format!("\"{escaped}\""),
                _ if !text.contains('\n') || !self.careful => format!("'{}'", text.replace('\'', "''")),
                _ => format!("\"{escaped}\""),
            }
        }

        /// A node anchored now and then, or (careless) an alias.
        fn properties(&mut self) -> String {
            match self.roll(12) {
                0 => {
                    self.anchors += 1;
                    format!("&a{} ", self.anchors)
                }
                _ => String::new(),
            }
        }

        fn flow(&mut self, tree: &Tree) -> String {
            let properties = self.properties();
            let body = match tree {
                Tree::Scalar(_) if !self.careful && self.anchors > 0 && self.roll(10) == 0 => {
                    return format!("{properties}*a{}", 1 + self.roll(self.anchors as u64));
                }
                Tree::Scalar(text) => self.scalar(text),
                Tree::Seq(items) => {
                    let items: Vec<String> = items.iter().map(|item| self.flow(item)).collect();
                    format!("[{}]", items.join(", "))
                }
                Tree::Map(entries) => {
                    let entries: Vec<String> = entries.iter().map(|(key, value)| format!("{}: {}", self.scalar(key), self.flow(value))).collect();
                    format!("{{{}}}", entries.join(", "))
                }
            };
            format!("{properties}{body}")
        }

        fn noise(&mut self, indent: usize) {
            match self.roll(16) {
                0 => self.out.push('\n'),
                1 => self.out.push_str(&format!("{}# comment\n", " ".repeat(indent))),
                2 if !self.careful => self.out.push(' '),
                _ => {}
            }
        }

        /// `tree` after `key:` or `- ` (`after_dash`), whose owner is in column `indent`.
        /// A scalar wrapped over several lines at some of its spaces, as PyYAML and go-yaml
        /// wrap long strings; carefully, only at a space between two other characters.
        fn wrap(&mut self, scalar: &str, indent: usize) -> String {
            let bytes = scalar.as_bytes();
            let mut out = String::new();
            for (i, c) in scalar.char_indices() {
                let single = i > 0 && i + 1 < bytes.len() && bytes[i - 1] != b' ' && bytes[i + 1] != b' ';
                if c == ' ' && (single || !self.careful) && self.roll(2) == 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                } else {
                    out.push(c);
                }
            }
            out
        }

        /// Whether `text` can be a literal block scalar (`|` or `|-`), carefully written.
        fn literal_fits(&self, text: &str) -> bool {
            let body = text.strip_suffix('\n').unwrap_or(text);
            !self.careful || (!body.is_empty() && !body.starts_with([' ', '\n']) && !body.ends_with('\n') && body.split('\n').all(|line| line.is_empty() || !line.trim().is_empty()))
        }

        fn value(&mut self, tree: &Tree, indent: usize, after_dash: bool) {
            if let Tree::Scalar(text) = tree
                && (text.contains('\n') || self.roll(8) == 0)
                && self.literal_fits(text)
                && self.roll(2) == 0
            {
                let body = text.strip_suffix('\n').unwrap_or(text);
                let header = if text.ends_with('\n') { "|" } else { "|-" };
                let properties = self.properties();
                self.out.push_str(&format!(" {properties}{header}\n"));
                for line in body.split('\n') {
                    if !line.is_empty() {
                        self.out.push_str(&" ".repeat(indent + 2));
                        self.out.push_str(line);
                    }
                    self.out.push('\n');
                }
                return;
            }
            let block = match tree {
                Tree::Scalar(_) => false,
                Tree::Map(entries) => !entries.is_empty() && self.roll(3) > 0,
                Tree::Seq(items) => !items.is_empty() && self.roll(3) > 0,
            };
            if !block {
                let text = match tree {
                    Tree::Scalar(text) if self.roll(3) == 0 => {
                        let properties = self.properties();
                        let scalar = self.scalar(text);
                        let extra = self.roll(3) as usize;
                        format!("{properties}{}", self.wrap(&scalar, indent + 1 + extra))
                    }
                    _ => self.flow(tree),
                };
                let comment = if self.roll(8) == 0 { " # c" } else { "" };
                self.out.push_str(&format!(" {text}{comment}\n"));
                return;
            }
            let properties = self.properties();
            let inner = indent + 2;
            let compact = after_dash && properties.is_empty() && self.roll(2) == 0;
            match tree {
                Tree::Map(entries) if compact => {
                    self.out.push(' ');
                    self.block_map(entries, inner, true);
                }
                Tree::Seq(items) if compact => {
                    self.out.push(' ');
                    self.block_seq(items, inner, true);
                }
                Tree::Map(entries) => {
                    self.out.push_str(format!(" {properties}").trim_end());
                    self.out.push('\n');
                    self.block_map(entries, inner, false);
                }
                Tree::Seq(items) => {
                    self.out.push_str(format!(" {properties}").trim_end());
                    self.out.push('\n');
                    // kubectl writes a key's sequence at the key's column.
                    let column = if !after_dash && self.roll(2) == 0 { indent } else { inner };
                    self.block_seq(items, column, false);
                }
                Tree::Scalar(_) => unreachable!(),
            }
        }

        /// Entries in column `indent`; `inline`: the first one goes on the current line.
        fn block_map(&mut self, entries: &[(String, Tree)], indent: usize, inline: bool) {
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 || !inline {
                    self.noise(indent);
                    self.out.push_str(&" ".repeat(indent));
                }
                let key = self.scalar(key);
                self.out.push_str(&format!("{key}:"));
                self.value(value, indent, false);
            }
        }

        fn block_seq(&mut self, items: &[Tree], indent: usize, inline: bool) {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !inline {
                    self.noise(indent);
                    self.out.push_str(&" ".repeat(indent));
                }
                self.out.push('-');
                self.value(item, indent, true);
            }
        }

        /// Documents, the first of them a `List` whose items are `trees`.
        fn stream(mut self, trees: &[Tree]) -> String {
            self.out.push_str("apiVersion: v1\nkind: List\nitems:");
            self.value(&Tree::Seq(trees.to_vec()), 0, false);
            for tree in trees {
                let separator = if self.roll(2) == 0 { "---\n" } else { "...\n---\n" };
                self.out.push_str(separator);
                match tree {
                    Tree::Map(entries) if !entries.is_empty() => self.block_map(entries, 0, false),
                    Tree::Seq(items) if !items.is_empty() => self.block_seq(items, 0, false),
                    other => {
                        let text = self.flow(other);
                        self.out.push_str(&format!("{text}\n"));
                    }
                }
            }
            self.out
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn careless_writing_is_read_as_saphyr_reads_it(trees in proptest::collection::vec(tree(), 1..4), seed in 1u64..) {
            agrees(&Writer { seed, careful: false, anchors: 0, out: String::new() }.stream(&trees));
        }

        #[test]
        fn mangled_writing_is_read_as_saphyr_reads_it(
            trees in proptest::collection::vec(tree(), 1..3),
            seed in 1u64..,
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), proptest::sample::select(EDITS)), 1..4),
        ) {
            let mut text = Writer { seed, careful: true, anchors: 0, out: String::new() }.stream(&trees);
            for (at, edit) in edits {
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = boundaries[at.index(boundaries.len())];
                match edit {
                    "" if at < text.len() => { text.remove(at); }
                    insert => text.insert_str(at, insert),
                }
            }
            agrees(&text);
        }

        #[test]
        fn careful_writing_is_taken_and_read_as_saphyr_reads_it(trees in proptest::collection::vec(tree(), 1..4), seed in 1u64..) {
            let text = Writer { seed, careful: true, anchors: 0, out: String::new() }.stream(&trees);
            // Keys that differ in text but not in value (`true`, `True`) are duplicates.
            prop_assume!(parse_yaml_documents(&text).is_ok());
            same(&text);
        }
    }
}
