//! The server's layering, checked on its source text (in the manner of rust-analyzer's tidy
//! tests): only `src/http/` knows HTTP, and the top-level modules depend on each other without
//! a cycle. Comments are ignored; paths are read textually (`crate::<module>`, including
//! `use crate::{a, b}` groups).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The composition root: it declares `mod http`, builds the state and serves the router, so
/// it may name both sides.
const ROOT: &str = "lib.rs";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The text of `path` without `//` comments (a `//` right after `:` is a URL, kept).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("reading a source file");
    text.lines()
        .map(|line| {
            let mut cut = line.len();
            let bytes = line.as_bytes();
            for i in 0..bytes.len().saturating_sub(1) {
                if bytes[i] == b'/' && bytes[i + 1] == b'/' && (i == 0 || bytes[i - 1] != b':') {
                    cut = i;
                    break;
                }
            }
            &line[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a source file belongs to (`http` for everything under `src/http/`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src");
    let first = relative
        .components()
        .next()
        .expect("a path component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The identifiers `code` reaches through `crate::`: `crate::a::…` gives `a`, and
/// `crate::{a, b::c}` gives `a` and `b`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // The first identifier of each top-level item of the group.
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn only_the_http_module_knows_http() {
    let src = src();
    let mut offences = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("a file under src");
        if relative.starts_with("http") || relative == Path::new(ROOT) {
            continue;
        }
        let code = code_of(&file);
        let before = offences.len();
        for (number, line) in code.lines().enumerate() {
            if crate_references(line).contains("http") || line.contains("axum") {
                offences.push(format!(
                    "src/{}:{}: {}",
                    relative.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
        // A `use crate::{…}` group spanning lines.
        if offences.len() == before && crate_references(&code).contains("http") {
            offences.push(format!("src/{}: uses crate::http", relative.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "only src/http/ may use crate::http or axum (HTTP stays at the edge):\n{}",
        offences.join("\n")
    );
}

/// The top-level modules and which other top-level modules each one names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let files: Vec<PathBuf> = rust_files(&src)
        .into_iter()
        .filter(|f| {
            let relative = f.strip_prefix(&src).expect("a file under src");
            relative != Path::new(ROOT) && relative != Path::new("main.rs")
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let module = module_of(&src, file);
        for name in crate_references(&code_of(file)) {
            if name != module && modules.contains(&name) {
                graph.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    graph
}

/// A cycle in `graph` (its modules in order, the first repeated at the end), if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::OnPath);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::Unvisited) {
                Mark::OnPath => {
                    let start = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::Unvisited => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::Unvisited) == Mark::Unvisited
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = module_graph();
    let map: Vec<String> = graph
        .iter()
        .map(|(module, uses)| {
            let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
            format!("  {module} -> {}", uses.join(", "))
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules of skaerm-server form a cycle: {}\nthe module graph:\n{}",
            cycle.join(" -> "),
            map.join("\n")
        );
    }
    // The graph, for ARCHITECTURE.md: `cargo test -p skaerm-server --test architecture -- --nocapture`.
    println!("{}", map.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles_and_only_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
            g.entry((*to).to_owned()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        crate_references(
            "use crate::{audit, http::{problem::Problem, session}, jobs};\nlet x = crate::state::S;"
        ),
        ["audit", "http", "jobs", "state"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
