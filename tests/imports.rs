//! No import circle in the workspace: within each crate (the library, the command, the
//! benchmarks, the preload library), the modules that name each other through paths
//! (`crate::`, `super::`, `self::`, or starting at a child module: `release::Residency` in the
//! parent) form no cycle, so each layer depends one way, and a facade that routes to its parts
//! is not used back by them. A module is a file (`a.rs` or `a/mod.rs`); a path names the
//! deepest module it passes through (an item of a module's file is that module); a `mod a;`
//! declaration is not a use; unit tests (`#[cfg(test)] mod tests`) are left out. Also checks
//! the checker on made-up crates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The crate's modules under `src`, each with its file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel: Vec<String> = path
                .strip_prefix(src)
                .unwrap()
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let module = match rel.as_slice() {
                [root] if root == "lib" => vec![],
                // A binary's root is a crate of its own, above the library.
                [root] if root == "main" => continue,
                [parent @ .., last] if last == "mod" => parent.to_vec(),
                _ => rel,
            };
            out.insert(module, path);
        }
    }
    out
}

/// The source without comments, string and character literals, and unit-test modules.
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A character literal ('a', '\n'), not a lifetime.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path in `code` (an identifier followed by `::`, not itself after `::`), as segments;
/// the groups of a `use` (`crate::a::{b, c::d}`) are expanded. Which of them name modules of
/// the crate is for [`target`] to say.
fn paths(code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_ident = (b[i].is_ascii_alphabetic() || b[i] == b'_') && (i == 0 || !ident(b[i - 1]));
        let after_colons = i >= 2 && &b[i - 2..i] == b"::";
        if starts_ident && !after_colons {
            let mut j = i;
            while j < b.len() && ident(b[j]) {
                j += 1;
            }
            if b[j..].starts_with(b"::") {
                let end = path_end(b, i);
                expand(&code[i..end], &mut Vec::new(), &mut out);
                i = end.max(i + 1);
                continue;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Where the path starting at `i` ends: after its last segment or its closing brace.
fn path_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return i,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            c if depth == 0 && !(c.is_ascii_alphanumeric() || c == b'_' || c == b':') => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Adds the paths `text` (a path, possibly ending in a `{...}` group) stands for, after
/// `prefix`.
fn expand(text: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim();
    let (head, group) = match text.find('{') {
        Some(i) => (&text[..i], Some(&text[i + 1..text.rfind('}').unwrap_or(text.len())])),
        None => (text, None),
    };
    let head = head.split(" as ").next().unwrap_or(head);
    let n = prefix.len();
    prefix.extend(head.split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    match group {
        None => out.push(prefix.clone()),
        Some(g) => {
            for item in split_top(g) {
                expand(item, prefix, out);
            }
        }
    }
    prefix.truncate(n);
}

/// The items of a `use` group, split at its own commas.
fn split_top(g: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in g.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&g[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&g[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The module a path in module `from` names: the deepest module it passes through (`crate::`,
/// `super::` and `self::` paths, and those starting at a child module of `from`); `from` itself
/// for any other path (a type's, an outside crate's).
fn target(from: &Module, path: &[String], mods: &BTreeMap<Module, PathBuf>) -> Module {
    let mut base: Module = from.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super" | "self") => {
            while let Some(s) = rest.first().map(String::as_str).filter(|s| *s == "super" || *s == "self") {
                if s == "super" {
                    base.pop();
                }
                rest = &rest[1..];
            }
        }
        Some(child) if mods.contains_key(&[from.as_slice(), &[child.to_string()]].concat()) => {}
        _ => return from.clone(),
    }
    for seg in rest {
        base.push(seg.clone());
        if !mods.contains_key(&base) {
            base.pop();
            break;
        }
    }
    base
}

/// The module graph of the crate under `src`.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(src);
    let mut edges = BTreeMap::new();
    for (m, file) in &mods {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let to: BTreeSet<Module> =
            paths(&text).iter().map(|p| target(m, p, &mods)).filter(|t| t != m && mods.contains_key(t)).collect();
        edges.insert(m.clone(), to);
    }
    edges
}

/// The graph's cycles: each strongly connected component of more than one module.
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for start in g.keys() {
        if !seen.insert(start.clone()) {
            continue;
        }
        let mut stack = vec![(start.clone(), g[start].iter().cloned().collect::<Vec<_>>())];
        while let Some((node, next)) = stack.last_mut() {
            match next.pop() {
                Some(n) if seen.insert(n.clone()) => {
                    let succ = g[&n].iter().cloned().collect();
                    stack.push((n, succ));
                }
                Some(_) => {}
                None => {
                    order.push(node.clone());
                    stack.pop();
                }
            }
        }
    }
    let mut rev: BTreeMap<&Module, Vec<&Module>> = g.keys().map(|k| (k, Vec::new())).collect();
    for (from, tos) in g {
        for to in tos {
            rev.get_mut(to).unwrap().push(from);
        }
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for root in order.iter().rev() {
        if !done.insert(root) {
            continue;
        }
        let (mut comp, mut stack) = (vec![root], vec![root]);
        while let Some(n) = stack.pop() {
            for &p in &rev[n] {
                if done.insert(p) {
                    comp.push(p);
                    stack.push(p);
                }
            }
        }
        if comp.len() > 1 {
            let mut names: Vec<String> =
                comp.iter().map(|m| if m.is_empty() { "crate".into() } else { m.join("::") }).collect();
            names.sort();
            out.push(names);
        }
    }
    out
}

#[test]
fn no_crate_of_the_workspace_has_an_import_circle() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for krate in ["src", "cli/src", "bench/src", "preload/src"] {
        let g = graph(&ws.join(krate));
        assert!(g.len() > 1 || krate == "preload/src", "{krate}: no modules found");
        for c in cycles(&g) {
            found.push(format!("{krate}: {}", c.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import circles (each module names another in its circle):\n{}", found.join("\n"));
}

/// A made-up crate in a fresh directory: `files` are (path under src, contents).
fn crate_of(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hugeheap-imports-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn the_checker_finds_circles_through_groups_super_and_nested_files() {
    let circle = crate_of(
        "circle",
        &[
            ("lib.rs", "mod a;\nmod b;\npub struct Root;\n"),
            ("a.rs", "use crate::{b::{self, Thing as T}, Root};\n"),
            ("b/mod.rs", "mod c;\npub use self::c::Other;\npub struct Thing;\n"),
            ("b/c.rs", "fn f() -> super::super::a::X { todo!() }\n"),
        ],
    );
    let g = graph(&circle);
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".into(), "b::c".into()]], "{g:?}");
    let clean = crate_of(
        "clean",
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            // Comments, strings and tests do not count.
            ("a.rs", "// crate::b::X\nconst S: &str = \"crate::b::Y\";\n#[cfg(test)]\nmod tests { use crate::b; }\n"),
            ("b.rs", "use crate::a::Z;\n"),
        ],
    );
    assert!(cycles(&graph(&clean)).is_empty(), "{:?}", graph(&clean));
    let facade = crate_of(
        "facade",
        &[
            ("lib.rs", "mod p;\n"),
            ("p/mod.rs", "mod q;\nuse q::Part;\npub struct Whole;\nfn f() { let _ = core::mem::size_of::<u8>(); }\n"),
            ("p/q.rs", "use super::Whole;\npub struct Part;\n"),
        ],
    );
    assert_eq!(cycles(&graph(&facade)), vec![vec!["p".to_string(), "p::q".into()]]);
    for d in [circle, clean, facade] {
        let _ = std::fs::remove_dir_all(d);
    }
}
