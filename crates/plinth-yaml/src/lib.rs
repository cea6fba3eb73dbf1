//! YAML text to JSON values, remembering where every value came from.
//!
//! Catalog files are YAML, but everything after the boundary works on JSON
//! values (the shape Backstage's API speaks). This crate does that conversion
//! and keeps a [`PosTree`] beside each value, so that a problem found later at
//! a field path (`spec.owner`) can be reported at `file:line:column`.
//!
//! What it guarantees, because catalog files come from anyone:
//! - each `---` document is parsed on its own, so a syntax error in one
//!   document never hides the documents around it;
//! - duplicate mapping keys are errors, as in Backstage's YAML reader;
//! - alias expansion and nesting are bounded by [`Limits`] (no alias bombs,
//!   no stack exhaustion);
//! - plain scalars resolve with the YAML 1.2 core schema, as Backstage does
//!   (`yes` and `on` stay strings, `<<` is an ordinary key).
//!
//! [`to_yaml`] goes the other way, for showing entities as YAML.
//!
//! Pure: no I/O.

use std::collections::HashMap;
use std::fmt;

mod emit;

pub use emit::to_yaml;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Bounds on what one document may cost to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes in one document, counting every node an alias expands to.
    pub max_nodes: usize,
    /// Nesting depth of sequences and mappings.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 250_000,
            max_depth: 100,
        }
    }
}

/// A place in the source text, both numbers starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML document as a JSON value, with the positions of its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    pub positions: PosTree,
}

/// A document that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl std::error::Error for YamlError {}

/// Positions mirroring the shape of a document's JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum PosTree {
    Leaf(Pos),
    Seq(Pos, Vec<PosTree>),
    Map(Pos, Vec<EntryPos>),
}

/// Where a mapping entry's key stands, and the positions of its value.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPos {
    pub key: Box<str>,
    pub key_pos: Pos,
    pub value: PosTree,
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl PosTree {
    /// Where the node itself starts.
    pub fn pos(&self) -> Pos {
        match self {
            PosTree::Leaf(p) | PosTree::Seq(p, _) | PosTree::Map(p, _) => *p,
        }
    }

    /// The best position for a path: the key of the last mapping entry or the
    /// item it names, or, where the path leaves the document (a missing
    /// field), the deepest place it reached.
    pub fn locate<'a>(&self, path: impl IntoIterator<Item = Step<'a>>) -> Pos {
        let mut node = self;
        let mut best = self.pos();
        for step in path {
            let next = match (node, step) {
                (PosTree::Map(_, entries), Step::Key(key)) => entries
                    .iter()
                    .find(|e| &*e.key == key)
                    .map(|e| (e.key_pos, &e.value)),
                (PosTree::Seq(_, items), Step::Index(i)) => items.get(i).map(|n| (n.pos(), n)),
                _ => None,
            };
            match next {
                Some((pos, child)) => {
                    best = pos;
                    node = child;
                }
                None => break,
            }
        }
        best
    }
}

/// Parses every document of a YAML stream: each yields its value or the error
/// that stopped it. Comments alone yield nothing; a bare `---` yields a null
/// document, as in any YAML reader.
pub fn parse_documents(text: &str, limits: &Limits) -> Vec<Result<Document, YamlError>> {
    documents(text, limits).collect()
}

/// [`parse_documents`] one document at a time, so that a large stream is
/// never held in memory whole.
pub fn documents<'a>(text: &'a str, limits: &'a Limits) -> Documents<'a> {
    Documents {
        chunks: split_documents(text).into_iter(),
        ready: std::collections::VecDeque::new(),
        limits,
    }
}

/// The iterator of [`documents`].
pub struct Documents<'a> {
    chunks: std::vec::IntoIter<Chunk<'a>>,
    ready: std::collections::VecDeque<Result<Document, YamlError>>,
    limits: &'a Limits,
}

impl Iterator for Documents<'_> {
    type Item = Result<Document, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(doc) = self.ready.pop_front() {
                return Some(doc);
            }
            let chunk = self.chunks.next()?;
            let mut out = Vec::new();
            parse_chunk(chunk.text, chunk.first_line, self.limits, &mut out);
            self.ready.extend(out);
        }
    }
}

struct Chunk<'a> {
    text: &'a str,
    first_line: u32,
}

/// Splits a stream at document markers (`---`, `...` at the start of a line).
/// YAML forbids such lines inside any scalar, so the split is exact; it lets a
/// syntax error stop only its own document.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    // True once the current chunk holds more than comments and directives.
    let mut has_content = false;
    let mut offset = 0usize;
    for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end_matches(['\n', '\r']);
        let next = offset + line.len();
        if is_marker(bare, "---") {
            if has_content {
                chunks.push(Chunk {
                    text: &text[start..offset],
                    first_line: start_line,
                });
                start = offset;
                start_line = line_no;
            }
            has_content = true;
        } else if is_marker(bare, "...") {
            chunks.push(Chunk {
                text: &text[start..next],
                first_line: start_line,
            });
            start = next;
            start_line = line_no + 1;
            has_content = false;
        } else {
            let t = bare.trim_start();
            if !(t.is_empty() || t.starts_with('#') || (bare.starts_with('%') && !has_content)) {
                has_content = true;
            }
        }
        offset = next;
    }
    if has_content {
        chunks.push(Chunk {
            text: &text[start..],
            first_line: start_line,
        });
    }
    chunks
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn parse_chunk(
    text: &str,
    first_line: u32,
    limits: &Limits,
    out: &mut Vec<Result<Document, YamlError>>,
) {
    let at = |span: &Span| Pos {
        line: first_line + span.start.line() as u32 - 1,
        column: span.start.col() as u32 + 1,
    };
    let mut builder: Option<Builder> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(err) => {
                let m = err.marker();
                out.push(Err(YamlError {
                    pos: Pos {
                        line: first_line + m.line() as u32 - 1,
                        column: m.col() as u32 + 1,
                    },
                    message: format!("YAML syntax error: {}", err.info()),
                }));
                return;
            }
        };
        let pos = at(&span);
        match event {
            Event::DocumentStart(_) => builder = Some(Builder::new(*limits)),
            Event::DocumentEnd => {
                if let Some(b) = builder.take() {
                    match b.finish() {
                        Ok(Some(doc)) => out.push(Ok(doc)),
                        Ok(None) => {}
                        Err(e) => out.push(Err(e)),
                    }
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            other => {
                let Some(b) = builder.as_mut() else { continue };
                if let Err(e) = b.event(other, pos) {
                    out.push(Err(e));
                    // The rest of this chunk is the same document; skip it.
                    return;
                }
            }
        }
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        nodes: usize,
        items: Vec<Value>,
        positions: Vec<PosTree>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        nodes: usize,
        map: Map<String, Value>,
        positions: Vec<EntryPos>,
        key: Option<(String, Pos)>,
    },
}

struct Anchored {
    value: Value,
    positions: PosTree,
    nodes: usize,
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
    root: Option<(Value, PosTree)>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
        }
    }

    fn finish(self) -> Result<Option<Document>, YamlError> {
        Ok(self
            .root
            .map(|(value, positions)| Document { value, positions }))
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                pos,
                message: format!(
                    "document is too large: more than {} values (counting what aliases expand to); split it or remove alias chains",
                    self.limits.max_nodes
                ),
            });
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), YamlError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, pos)?;
                let value = resolve_scalar(&text, style, tag.as_deref());
                self.remember(anchor, &value, &PosTree::Leaf(pos), 1);
                self.emit(value, PosTree::Leaf(pos), 1, Some(&text))
            }
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    });
                };
                let (value, positions, nodes) = (a.value.clone(), a.positions.clone(), a.nodes);
                self.count(nodes, pos)?;
                let key_text = value.as_str().map(str::to_owned);
                self.emit(value, positions, nodes, key_text.as_deref())
            }
            Event::SequenceStart(anchor, _) => {
                self.count(1, pos)?;
                self.push(Frame::Seq {
                    pos,
                    anchor,
                    nodes: 1,
                    items: Vec::new(),
                    positions: Vec::new(),
                })
            }
            Event::MappingStart(anchor, _) => {
                self.count(1, pos)?;
                self.push(Frame::Map {
                    pos,
                    anchor,
                    nodes: 1,
                    map: Map::new(),
                    positions: Vec::new(),
                    key: None,
                })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let (value, positions, anchor, nodes) = match frame {
                    Frame::Seq {
                        pos,
                        anchor,
                        nodes,
                        items,
                        positions,
                    } => (
                        Value::Array(items),
                        PosTree::Seq(pos, positions),
                        anchor,
                        nodes,
                    ),
                    Frame::Map {
                        pos,
                        anchor,
                        nodes,
                        map,
                        positions,
                        ..
                    } => (
                        Value::Object(map),
                        PosTree::Map(pos, positions),
                        anchor,
                        nodes,
                    ),
                };
                self.remember(anchor, &value, &positions, nodes);
                self.emit(value, positions, nodes, None)
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            let pos = match &frame {
                Frame::Seq { pos, .. } | Frame::Map { pos, .. } => *pos,
            };
            return Err(YamlError {
                pos,
                message: format!(
                    "document is nested more than {} levels deep",
                    self.limits.max_depth
                ),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn remember(&mut self, anchor: usize, value: &Value, positions: &PosTree, nodes: usize) {
        if anchor != 0 {
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    positions: positions.clone(),
                    nodes,
                },
            );
        }
    }

    /// Hands a finished value to its parent. `key_text` is the scalar's
    /// source text, used when the value is a mapping key.
    fn emit(
        &mut self,
        value: Value,
        positions: PosTree,
        nodes: usize,
        key_text: Option<&str>,
    ) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some((value, positions));
                Ok(())
            }
            Some(Frame::Seq {
                items,
                positions: ps,
                nodes: n,
                ..
            }) => {
                items.push(value);
                ps.push(positions);
                *n += nodes;
                Ok(())
            }
            Some(Frame::Map {
                map,
                positions: ps,
                key,
                nodes: n,
                ..
            }) => {
                *n += nodes;
                match key.take() {
                    Some((k, key_pos)) => {
                        map.insert(k.clone(), value);
                        ps.push(EntryPos {
                            key: k.into_boxed_str(),
                            key_pos,
                            value: positions,
                        });
                        Ok(())
                    }
                    None => {
                        let pos = positions.pos();
                        let k = match (&value, key_text) {
                            (Value::Array(_) | Value::Object(_), _) => {
                                return Err(YamlError {
                                    pos,
                                    message:
                                        "a mapping key must be a plain value, not a list or mapping"
                                            .into(),
                                });
                            }
                            (Value::String(s), _) => s.clone(),
                            (_, Some(text)) => text.to_owned(),
                            (other, None) => other.to_string(),
                        };
                        if let Some(first) = ps.iter().find(|e| *e.key == *k) {
                            return Err(YamlError {
                                pos,
                                message: format!(
                                    "duplicate key \"{k}\" (first at line {}); remove one of them",
                                    first.key_pos.line
                                ),
                            });
                        }
                        *key = Some((k, pos));
                        Ok(())
                    }
                }
            }
        }
    }
}

/// What a plain scalar reads as.
fn resolve_plain(text: &str) -> Value {
    resolve_scalar(text, ScalarStyle::Plain, None)
}

/// Resolves a scalar with the YAML 1.2 core schema, the schema Backstage's
/// YAML reader uses. Quoted and block scalars are always strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && tag.is_yaml_core_schema()
        && tag.suffix == "str"
    {
        return Value::String(text.to_owned());
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Value::Number(n);
    }
    if is_core_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    // `.inf` and `.nan` have no JSON form; they stay as written.
    Value::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<Number> {
    let (radix, digits) = if let Some(d) = text.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = text.strip_prefix("0x") {
        (16, d)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return match text.parse::<i64>() {
            Ok(i) => Some(i.into()),
            Err(_) => match text.parse::<u64>() {
                Ok(u) => Some(u.into()),
                Err(_) => text.parse::<f64>().ok().and_then(Number::from_f64),
            },
        };
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(Number::from)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests;
