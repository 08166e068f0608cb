//! The shape of the source tree: no module imports another that (through
//! any chain) imports it back, so each part can be read and changed from
//! the bottom up. Test code (`tests` modules, `testkit`) may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src/` (its path, as `a::b`) and its file.
fn modules(root: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).expect("under src");
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let name = parts.join("::");
            let test_code = parts.iter().any(|p| p == "tests" || p == "testkit");
            if !name.is_empty() && !test_code {
                out.insert(name, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The file's code without comments and without its inline test module.
fn production_code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths after each `crate::` in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect::<String>()
        })
        .collect()
}

/// The paths each `super::` of module `from`'s code names, as paths from
/// the crate's root (`web::caller` writing `super::respond` names
/// `web::respond`).
fn super_paths(from: &str, code: &str) -> Vec<String> {
    let parent: Vec<&str> = from.split("::").collect();
    let parent = parent[..parent.len().saturating_sub(1)].join("::");
    code.match_indices("super::")
        // `super::super::` and the like are left to `crate::` paths
        .filter(|(at, _)| !code[..*at].ends_with("::"))
        .map(|(at, m)| {
            let rest: String = code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if parent.is_empty() {
                rest
            } else {
                format!("{parent}::{rest}")
            }
        })
        .collect()
}

/// Edges between sibling modules: `a::b` using `a::c::d` is `a::b -> a::c`.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&root);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, file) in &modules {
        let code = production_code(&std::fs::read_to_string(file).expect("readable"));
        for path in crate_paths(&code)
            .into_iter()
            .chain(super_paths(from, &code))
        {
            let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            // the longest prefix that is a module
            let Some(to) = (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| modules.contains_key(m))
            else {
                continue;
            };
            let a: Vec<&str> = from.split("::").collect();
            let b: Vec<&str> = to.split("::").collect();
            let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            // a module may use its ancestors and its own descendants
            if common == a.len() || common == b.len() {
                continue;
            }
            edges
                .entry(a[..=common].join("::"))
                .or_default()
                .insert(b[..=common].join("::"));
        }
    }
    edges
}

/// The modules reachable from `start`.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_string()];
    while let Some(m) = todo.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = edges();
    assert!(
        edges.get("drivers").is_some_and(|e| e.contains("engine")),
        "the check sees the imports: {edges:?}"
    );
    let mut cycles = Vec::new();
    for (from, to) in &edges {
        for next in to {
            if reachable(&edges, next).contains(from) {
                cycles.push(format!("{from} -> {next} -> ... -> {from}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_stages_know_nothing_of_the_drivers_or_of_kafka() {
    let edges = edges();
    for stage in ["stages", "engine"] {
        let below = reachable(&edges, stage);
        for above in ["drivers", "kafka", "embedded", "ops"] {
            assert!(!below.contains(above), "{stage} reaches {above}: {below:?}");
        }
    }
}
