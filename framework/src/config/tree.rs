//! A plain, span-carrying copy of a parsed TOML document.
//!
//! Each file is parsed with `toml_edit` and copied into this tree, with every span tagged with its file.
//! Layering (`extends`, `modules.d/`) then happens on these trees, so a value that came from a base file
//! still points into the base file when it turns out to be wrong.

use toml_edit::{Item, TableLike, Value};

use super::diagnostic::{FileId, Issue, Span};

/// A TOML value with the span of the value itself.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
}

/// Entries in file order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

impl Kind {
    /// "a string", "an integer", … for "found …" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let index = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(index))
    }
}

/// Parses one file. A syntax error becomes an issue located where `toml_edit` stopped.
pub(crate) fn parse(file: FileId, text: &str) -> Result<Table, Issue> {
    match toml_edit::Document::parse(text) {
        Ok(doc) => Ok(convert_table(file, doc.as_table())),
        Err(err) => {
            let range = err.span().unwrap_or(0..0);
            Err(Issue::new(Span::new(file, range), format!("invalid TOML: {}", err.message()))
                .expected("valid TOML (see https://toml.io)"))
        }
    }
}

fn convert_table(file: FileId, table: &dyn TableLike) -> Table {
    let entries = table
        .iter()
        .filter_map(|(key, item)| {
            let (key_repr, _) = table.get_key_value(key)?;
            let key_span = Span::new(file, key_repr.span().unwrap_or(0..0));
            let node = convert_item(file, item, &key_span)?;
            Some(Entry { key: key.to_string(), key_span, node })
        })
        .collect();
    Table { entries }
}

fn convert_item(file: FileId, item: &Item, key_span: &Span) -> Option<Node> {
    // Implicit tables (`modules` in `[modules.api]`) have no span of their own: use the key's.
    let span = item.span().map_or_else(|| key_span.clone(), |r| Span::new(file, r));
    let kind = match item {
        Item::None => return None,
        Item::Value(value) => return Some(convert_value(file, value)),
        Item::Table(table) => Kind::Table(convert_table(file, table)),
        Item::ArrayOfTables(array) => Kind::Array(
            array
                .iter()
                .map(|t| Node {
                    span: t.span().map_or_else(|| span.clone(), |r| Span::new(file, r)),
                    kind: Kind::Table(convert_table(file, t)),
                })
                .collect(),
        ),
    };
    Some(Node { kind, span })
}

fn convert_value(file: FileId, value: &Value) -> Node {
    let span = Span::new(file, value.span().unwrap_or(0..0));
    let kind = match value {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(_) => Kind::Float,
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(_) => Kind::Datetime,
        Value::Array(array) => Kind::Array(array.iter().map(|v| convert_value(file, v)).collect()),
        Value::InlineTable(table) => Kind::Table(convert_table(file, table)),
    };
    Node { kind, span }
}

/// How deep an overlay merges into its base (see docs/stack-file.md, "extends").
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The document: `[project]`, `[defaults]`, `[modules]`, `[profiles]` merge.
    Root,
    /// `[modules]` / `[profiles]`: each named entry merges.
    Collection,
    /// `[project]`, `[defaults]`, one module or profile: keys replace, but `env` merges.
    Entity,
    /// An `env` table: variables replace one by one.
    Env,
}

/// Layers `overlay` on top of `base` (the extending file wins).
pub(crate) fn merge_overlay(base: &mut Table, overlay: Table) {
    merge_at(base, overlay, Level::Root);
}

fn merge_at(base: &mut Table, overlay: Table, level: Level) {
    for entry in overlay.entries {
        let child = child_level(level, &entry.key);
        let Some(existing) = base.get_mut(&entry.key) else {
            base.entries.push(entry);
            continue;
        };
        match (child, &mut existing.node.kind, entry.node.kind) {
            (Some(child), Kind::Table(base_table), Kind::Table(over_table)) => {
                merge_at(base_table, over_table, child);
                // The overlay's key is where the user last said something about this entry.
                existing.key_span = entry.key_span;
            }
            (_, _, kind) => {
                *existing =
                    Entry { key: entry.key, key_span: entry.key_span, node: Node { kind, span: entry.node.span } };
            }
        }
    }
}

fn child_level(level: Level, key: &str) -> Option<Level> {
    match (level, key) {
        (Level::Root, "modules" | "profiles") => Some(Level::Collection),
        (Level::Root, "project" | "defaults") => Some(Level::Entity),
        (Level::Collection, _) => Some(Level::Entity),
        (Level::Entity, "env") => Some(Level::Env),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        match parse(0, text) {
            Ok(t) => t,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn render(t: &Table) -> String {
        fn node(n: &Node) -> String {
            match &n.kind {
                Kind::Str(s) => format!("{s:?}"),
                Kind::Int(i) => i.to_string(),
                Kind::Table(t) => format!("{{{}}}", render(t)),
                Kind::Array(a) => format!("[{}]", a.iter().map(node).collect::<Vec<_>>().join(",")),
                other => other.describe().to_string(),
            }
        }
        t.entries.iter().map(|e| format!("{}={}", e.key, node(&e.node))).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn overlay_merges_down_to_module_keys_and_env_variables() {
        let mut base = table(
            "[modules.a]\nrun = \"x\"\nenv = { A = \"1\", B = \"2\" }\nhealth = { tcp = \"h:1\", retries = 3 }\n",
        );
        let over =
            table("[modules.a]\nenv = { B = \"3\" }\nhealth = { http = \"http://h:1/\" }\n[modules.b]\nrun = \"y\"\n");
        merge_overlay(&mut base, over);
        assert_eq!(
            render(&base),
            "modules={a={run=\"x\" env={A=\"1\" B=\"3\"} health={http=\"http://h:1/\"}} b={run=\"y\"}}"
        );
    }

    #[test]
    fn syntax_errors_carry_a_span() {
        let err = parse(0, "a = \"x\nb = 1\n").err();
        assert_eq!(err.map(|e| e.span.range), Some(6..6));
    }
}
