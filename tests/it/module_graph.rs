//! The library's module graph, read from `src/`: which module names which (`crate::module`
//! in code, not in comments or test modules). It must have no cycle, so that each module can
//! be read and changed knowing only the modules below it (docs/ARCHITECTURE.md, "Modules of
//! the broker library").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules its code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<(String, String)> = std::fs::read_dir(&src)
        .expect("src/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let module = path.file_stem().unwrap().to_string_lossy().into_owned();
            (module, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    files
        .iter()
        .map(|(module, text)| {
            let code = text
                .lines()
                .take_while(|line| !line.starts_with("#[cfg(test)]"))
                .filter(|line| !line.trim_start().starts_with("//"));
            let mut named = BTreeSet::new();
            for line in code {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != *module && modules.contains(name.as_str()) {
                        named.insert(name);
                    }
                }
            }
            (module.clone(), named)
        })
        .collect()
}

/// The first cycle found, as the modules along it (the first one repeated at the end).
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_library_modules_depend_on_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(
        graph.len() >= 20 && graph["refresh"].contains("plan") && graph["login"].contains("pacing"),
        "the graph was read from src/: {graph:?}"
    );
    assert_eq!(a_cycle(&graph), None, "module cycle in src/");
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("config", vec!["iadvize"]),
        ("iadvize", vec!["error"]),
        ("error", vec!["config"]),
        ("plan", vec![]),
    ]
    .into_iter()
    .map(|(m, named)| (m.to_owned(), named.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        a_cycle(&graph),
        Some(
            vec!["config", "iadvize", "error", "config"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        )
    );
}
