//! Keeps the protocol's three views in sync: `src/ext.rs` (the truth), `ts/steward-protocol.ts` (generated
//! from it here) and `docs/api.md` (written by people; checked here for coverage and for the hash of the
//! `ext.rs` it was last reviewed against).
//!
//! - `UPDATE_TS=1 cargo test -p steward-protocol --test tidy` rewrites the TypeScript file.
//! - When `ext.rs` changes, update `docs/api.md` for the change and put the new hash (printed by the failing
//!   test) in its `ext.rs hash:` line.
//! - `docs/api.md`'s method index (every method with its direction, params and result types) is generated
//!   here; `UPDATE_DOCS=1 cargo test -p steward-protocol --test tidy` rewrites it.
//!
//! The generator reads `ext.rs` with `syn` and understands exactly the serde attributes listed in ext.rs's
//! module docs; anything else fails the test rather than producing wrong types.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::{Attribute, Expr, Fields, GenericArgument, Item, Lit, PathArguments, Type};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).replace('\r', "")
}

fn ext_source() -> String {
    read(&crate_dir().join("src/ext.rs"))
}

fn parse_ext() -> syn::File {
    syn::parse_file(&ext_source()).expect("ext.rs parses")
}

/// FNV-1a, 64 bits: tiny and stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

// -----------------------------------------------------------------------------------------------------------
// Reading ext.rs

#[derive(Debug, Default)]
struct Serde {
    rename_all: bool,
    rename_all_fields: bool,
    tag: Option<String>,
    rename: Option<String>,
    default: bool,
    skip_if: bool,
    flatten: bool,
}

fn serde_attrs(attrs: &[Attribute], what: &str) -> Serde {
    let mut s = Serde::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        a.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match key.as_str() {
                "rename_all" | "rename_all_fields" => {
                    let v: syn::LitStr = meta.value()?.parse()?;
                    assert_eq!(v.value(), "camelCase", "{what}: only camelCase is supported by the TS generator");
                    if key == "rename_all" { s.rename_all = true } else { s.rename_all_fields = true }
                }
                "tag" => s.tag = Some(meta.value()?.parse::<syn::LitStr>()?.value()),
                "rename" => s.rename = Some(meta.value()?.parse::<syn::LitStr>()?.value()),
                "default" => {
                    if meta.input.peek(syn::Token![=]) {
                        let _: syn::LitStr = meta.value()?.parse()?;
                    }
                    s.default = true;
                }
                "skip_serializing_if" => {
                    let _: syn::LitStr = meta.value()?.parse()?;
                    s.skip_if = true;
                }
                "flatten" => s.flatten = true,
                other => panic!("{what}: serde attribute `{other}` is not supported by the TS generator"),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    s
}

fn docs(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).replace("[`", "`").replace("`]", "`"))
        .collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn lower_first(pascal: &str) -> String {
    let mut c = pascal.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

fn eval_int(e: &Expr) -> i128 {
    match e {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse().expect("integer"),
        Expr::Binary(b) => {
            let (l, r) = (eval_int(&b.left), eval_int(&b.right));
            match b.op {
                syn::BinOp::Mul(_) => l * r,
                syn::BinOp::Add(_) => l + r,
                syn::BinOp::Sub(_) => l - r,
                _ => panic!("unsupported operator in a const"),
            }
        }
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => -eval_int(expr),
        Expr::Paren(p) => eval_int(&p.expr),
        _ => panic!("unsupported const expression"),
    }
}

/// (method, params type, result type or None for notifications, marker type) from `impl Request for X`.
struct Method {
    name: String,
    konst: String,
    params: String,
    result: Option<String>,
    marker: String,
}

fn methods(file: &syn::File) -> Vec<Method> {
    let consts: BTreeMap<String, String> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Const(c) => match &*c.expr {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some((c.ident.to_string(), s.value())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for item in &file.items {
        let Item::Impl(imp) = item else { continue };
        let Some((_, trait_path, _)) = &imp.trait_ else { continue };
        let trait_name = trait_path.segments.last().unwrap().ident.to_string();
        if trait_name != "Request" && trait_name != "Notification" {
            continue;
        }
        let marker = ty_name(&imp.self_ty);
        let (mut konst, mut params, mut result) = (String::new(), String::new(), None);
        for ii in &imp.items {
            match ii {
                syn::ImplItem::Const(c) if c.ident == "METHOD" => {
                    konst = match &c.expr {
                        Expr::Path(p) => p.path.get_ident().expect("METHOD = CONST").to_string(),
                        _ => panic!("{marker}: METHOD must name a method const"),
                    }
                }
                syn::ImplItem::Type(t) if t.ident == "Params" => params = ty_name(&t.ty),
                syn::ImplItem::Type(t) if t.ident == "Result" => result = Some(ty_name(&t.ty)),
                _ => {}
            }
        }
        let name = consts.get(&konst).unwrap_or_else(|| panic!("{marker}: no const {konst}")).clone();
        assert_eq!(result.is_some(), trait_name == "Request", "{marker}");
        out.push(Method { name, konst, params, result, marker });
    }
    out
}

fn ty_name(t: &Type) -> String {
    match t {
        Type::Path(p) => p.path.segments.last().unwrap().ident.to_string(),
        _ => panic!("unsupported type position"),
    }
}

// -----------------------------------------------------------------------------------------------------------
// TypeScript

fn ts_type(t: &Type) -> String {
    let Type::Path(p) = t else { panic!("unsupported type: only paths") };
    let seg = p.path.segments.last().unwrap();
    let args: Vec<&Type> = match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    match seg.ident.to_string().as_str() {
        "String" | "str" | "PathBuf" => "string".into(),
        "bool" => "boolean".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" | "f32" | "f64" => {
            "number".into()
        }
        "Value" => "unknown".into(),
        "Option" => format!("{} | null", ts_type(args[0])),
        "Vec" => {
            let inner = ts_type(args[0]);
            if inner.contains(' ') { format!("({inner})[]") } else { format!("{inner}[]") }
        }
        "BTreeMap" | "HashMap" => format!("Record<string, {}>", ts_type(args[1])),
        other => other.to_string(),
    }
}

fn is_option(t: &Type) -> Option<&Type> {
    let Type::Path(p) = t else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

fn push_doc(out: &mut String, indent: &str, lines: &[String]) {
    match lines.len() {
        0 => {}
        1 => writeln!(out, "{indent}/** {} */", lines[0]).unwrap(),
        _ => {
            writeln!(out, "{indent}/**").unwrap();
            for l in lines {
                if l.is_empty() {
                    writeln!(out, "{indent} *").unwrap();
                } else {
                    writeln!(out, "{indent} * {l}").unwrap();
                }
            }
            writeln!(out, "{indent} */").unwrap();
        }
    }
}

/// Fields as TS members; flattened fields are returned separately (they become `& Type`).
fn ts_fields(fields: &Fields, camel_case: bool, indent: &str, what: &str) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut flattened = Vec::new();
    let Fields::Named(named) = fields else {
        assert!(matches!(fields, Fields::Unit), "{what}: tuple structs are not supported");
        return (body, flattened);
    };
    for f in &named.named {
        let ident = f.ident.as_ref().unwrap().to_string();
        let s = serde_attrs(&f.attrs, &format!("{what}.{ident}"));
        if s.flatten {
            flattened.push(ts_type(&f.ty));
            continue;
        }
        let name = s.rename.clone().unwrap_or_else(|| if camel_case { camel(&ident) } else { ident.clone() });
        let optional = s.default || s.skip_if;
        let ty = match (is_option(&f.ty), s.skip_if) {
            // Left out when None: `name?: T`.
            (Some(inner), true) => ts_type(inner),
            _ => ts_type(&f.ty),
        };
        push_doc(&mut body, indent, &docs(&f.attrs));
        writeln!(body, "{indent}{name}{}: {ty};", if optional { "?" } else { "" }).unwrap();
    }
    (body, flattened)
}

fn generate_ts(file: &syn::File) -> String {
    let markers: Vec<String> = methods(file).into_iter().map(|m| m.marker).collect();
    let mut out = String::new();
    out.push_str(
        "// Steward's protocol extensions, generated from protocol/src/ext.rs by protocol/tests/tidy.rs.\n\
         // Do not edit: change ext.rs and run `UPDATE_TS=1 cargo test -p steward-protocol --test tidy`.\n\
         // Integers are JSON numbers (ids and times stay below 2^53).\n\n",
    );
    for item in &file.items {
        match item {
            Item::Const(c) if matches!(c.vis, syn::Visibility::Public(_)) => {
                push_doc(&mut out, "", &docs(&c.attrs));
                let value = match &*c.expr {
                    Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => format!("{:?}", s.value()),
                    e => eval_int(e).to_string(),
                };
                writeln!(out, "export const {} = {value};\n", c.ident).unwrap();
            }
            Item::Struct(s) => {
                let name = s.ident.to_string();
                let sa = serde_attrs(&s.attrs, &name);
                push_doc(&mut out, "", &docs(&s.attrs));
                let (body, flattened) = ts_fields(&s.fields, sa.rename_all, "  ", &name);
                if flattened.is_empty() {
                    writeln!(out, "export interface {name} {{\n{body}}}\n").unwrap();
                } else {
                    writeln!(out, "export type {name} = {{\n{body}}} & {};\n", flattened.join(" & ")).unwrap();
                }
            }
            Item::Enum(e) if e.variants.is_empty() => {
                let name = e.ident.to_string();
                assert!(markers.contains(&name), "{name}: an empty enum must be a method marker");
            }
            Item::Enum(e) => {
                let name = e.ident.to_string();
                let sa = serde_attrs(&e.attrs, &name);
                push_doc(&mut out, "", &docs(&e.attrs));
                let vname = |v: &syn::Variant| {
                    let vs = serde_attrs(&v.attrs, &format!("{name}::{}", v.ident));
                    vs.rename.unwrap_or_else(|| {
                        if sa.rename_all { lower_first(&v.ident.to_string()) } else { v.ident.to_string() }
                    })
                };
                match &sa.tag {
                    None => {
                        writeln!(out, "export type {name} =").unwrap();
                        for v in &e.variants {
                            assert!(
                                matches!(v.fields, Fields::Unit),
                                "{name}: untagged data variants are not supported"
                            );
                            push_doc(&mut out, "  ", &docs(&v.attrs));
                            writeln!(out, "  | {:?}", vname(v)).unwrap();
                        }
                        out.push_str(";\n\n");
                    }
                    Some(tag) => {
                        writeln!(out, "export type {name} =").unwrap();
                        for v in &e.variants {
                            push_doc(&mut out, "  ", &docs(&v.attrs));
                            let what = format!("{name}::{}", v.ident);
                            let (body, flattened) = ts_fields(&v.fields, sa.rename_all_fields, "      ", &what);
                            assert!(flattened.is_empty(), "{what}: flatten inside a variant is not supported");
                            writeln!(out, "  | {{\n      {tag}: {:?};\n{body}    }}", vname(v)).unwrap();
                        }
                        out.push_str(";\n\n");
                    }
                }
            }
            _ => {}
        }
    }
    let all = methods(file);
    out.push_str("/** Every request: method name → params and result types. */\nexport interface Requests {\n");
    for m in all.iter().filter(|m| m.result.is_some()) {
        writeln!(out, "  {:?}: {{ params: {}; result: {} }};", m.name, m.params, m.result.as_ref().unwrap()).unwrap();
    }
    out.push_str("}\n\n/** Every notification from the daemon: method name → params type. */\nexport interface Notifications {\n");
    for m in all.iter().filter(|m| m.result.is_none()) {
        writeln!(out, "  {:?}: {};", m.name, m.params).unwrap();
    }
    out.push_str("}\n");
    out
}

#[test]
fn typescript_definitions_are_up_to_date() {
    let generated = generate_ts(&parse_ext());
    let path = crate_dir().join("ts/steward-protocol.ts");
    let current = std::fs::read_to_string(&path).unwrap_or_default().replace('\r', "");
    if current == generated {
        return;
    }
    if std::env::var_os("UPDATE_TS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let first_diff = current
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(current.lines().count().min(generated.lines().count()));
    panic!(
        "{} is stale (first difference at line {}).\nRun `UPDATE_TS=1 cargo test -p steward-protocol --test tidy` \
         and commit the result.",
        path.display(),
        first_diff + 1
    );
}

// -----------------------------------------------------------------------------------------------------------
// docs/api.md

fn api_doc() -> (PathBuf, String) {
    let path = crate_dir().parent().unwrap().join("docs/api.md");
    let text = read(&path);
    (path, text)
}

/// The body of the `### ` section whose heading names `method` (up to the next heading).
fn section<'a>(doc: &'a str, method: &str) -> Option<&'a str> {
    let needle = format!("`{method}`");
    let start = doc.lines().position(|l| l.starts_with("### ") && l.contains(&needle))?;
    let lines: Vec<&str> = doc.lines().collect();
    let from: usize = lines[..=start].iter().map(|l| l.len() + 1).sum();
    let len: usize = lines[start + 1..].iter().take_while(|l| !l.starts_with('#')).map(|l| l.len() + 1).sum();
    Some(&doc[from..(from + len).min(doc.len())])
}

#[test]
fn api_doc_describes_every_method_with_its_types() {
    let file = parse_ext();
    let (path, doc) = api_doc();
    let mut missing = Vec::new();
    for m in methods(&file) {
        match section(&doc, &m.name) {
            None => missing.push(format!("a `### \\`{}\\`` section ({})", m.name, m.konst)),
            Some(body) => {
                for ty in std::iter::once(&m.params).chain(m.result.iter()) {
                    if !body.contains(ty.as_str()) {
                        missing.push(format!("`{ty}` in the section of `{}`", m.name));
                    }
                }
            }
        }
    }
    for item in &file.items {
        let name = match item {
            Item::Struct(s) => s.ident.to_string(),
            Item::Enum(e) if !e.variants.is_empty() => e.ident.to_string(),
            Item::Const(c) if c.ident.to_string().starts_with("ERROR_") || c.ident.to_string().starts_with("MAX_") => {
                c.ident.to_string()
            }
            _ => continue,
        };
        if !doc.contains(&name) {
            missing.push(format!("a mention of `{name}`"));
        }
    }
    assert!(missing.is_empty(), "{} lacks:\n  {}", path.display(), missing.join("\n  "));
}

#[test]
fn api_doc_was_reviewed_against_the_current_ext_rs() {
    let (path, doc) = api_doc();
    let expected = fnv1a(&ext_source());
    let recorded = doc
        .lines()
        .find_map(|l| l.split("ext.rs hash: ").nth(1))
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect::<String>());
    assert_eq!(
        recorded.as_deref(),
        Some(expected.as_str()),
        "protocol/src/ext.rs changed since {} was last reviewed. Update the doc for the change, then set its \
         line `ext.rs hash: …` to `ext.rs hash: {expected}`.",
        path.display()
    );
}

// -----------------------------------------------------------------------------------------------------------
// docs/api.md's method index (generated)

const INDEX_BEGIN: &str =
    "<!-- method index: generated from protocol/src/ext.rs by protocol/tests/tidy.rs; UPDATE_DOCS=1 rewrites it -->";
const INDEX_END: &str = "<!-- method index: end -->";

/// GitHub's anchor for a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// One row per method and notification of `ext.rs`, in its order, linking to the method's section.
fn method_index(file: &syn::File) -> String {
    let mut out = String::from("| method | kind | params | result |\n|---|---|---|---|\n");
    for m in methods(file) {
        let (kind, result) = match &m.result {
            Some(r) => ("request", format!("`{r}`")),
            None => ("notification (daemon → client)", "—".to_string()),
        };
        let _ = writeln!(out, "| [`{}`](#{}) | {kind} | `{}` | {result} |", m.name, anchor(&m.name), m.params);
    }
    out
}

#[test]
fn api_doc_method_index_is_generated_from_ext_rs() {
    let (path, doc) = api_doc();
    let generated = method_index(&parse_ext());
    let (Some(begin), Some(end)) = (doc.find(INDEX_BEGIN), doc.find(INDEX_END)) else {
        panic!("{} lacks the method index markers:\n{INDEX_BEGIN}\n{INDEX_END}", path.display());
    };
    let from = begin + INDEX_BEGIN.len() + 1;
    assert!(from <= end, "the method index markers are out of order in {}", path.display());
    if doc[from..end] == generated {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &doc[..from], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "the method index in {} is stale. Run `UPDATE_DOCS=1 cargo test -p steward-protocol --test tidy` and \
         commit the result.",
        path.display()
    );
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor("`steward/logs/query`"), "stewardlogsquery");
    assert_eq!(anchor("`$/progress`"), "progress");
    assert_eq!(anchor("Keeping this page true"), "keeping-this-page-true");
}
