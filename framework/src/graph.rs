//! The module dependency graph: start order, reverse edges and cycles. Pure functions over names.
//!
//! An edge `a → b` means "`a` requires `b`": `b` starts first and stops last. Edges to names that are not
//! in the given map (e.g. modules outside the active profile) are ignored, so callers can pass any subset.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::ModuleSpec;

/// `requires` edges of a set of modules, by name (only edges to modules in the set).
pub fn edges(modules: &BTreeMap<String, ModuleSpec>) -> BTreeMap<String, Vec<String>> {
    modules
        .iter()
        .map(|(name, spec)| {
            let targets = spec.requires.iter().map(|r| r.module.clone()).filter(|m| modules.contains_key(m));
            (name.clone(), targets.collect())
        })
        .collect()
}

/// Topological levels: level 0 requires nothing, level n requires only modules of earlier levels. Modules
/// within a level do not depend on each other and may start in parallel; each level is sorted by name.
///
/// The loader rejects cycles; should one get here anyway, its modules form a last level rather than
/// vanish.
pub fn start_order(modules: &BTreeMap<String, ModuleSpec>) -> Vec<Vec<String>> {
    levels(&edges(modules))
}

/// The reverse of [`start_order`]: dependents stop before what they depend on.
pub fn stop_order(modules: &BTreeMap<String, ModuleSpec>) -> Vec<Vec<String>> {
    let mut order = start_order(modules);
    order.reverse();
    order
}

fn levels(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut remaining: Vec<&str> = edges.keys().map(String::as_str).collect();
    let mut levels = Vec::new();
    while !remaining.is_empty() {
        let ready =
            |name: &&str| edges[*name].iter().all(|dep| placed.contains(dep.as_str()) || !edges.contains_key(dep));
        let (level, rest): (Vec<&str>, Vec<&str>) = remaining.iter().copied().partition(ready);
        if level.is_empty() {
            levels.push(rest.iter().map(|s| s.to_string()).collect());
            break;
        }
        placed.extend(level.iter().copied());
        levels.push(level.iter().map(|s| s.to_string()).collect());
        remaining = rest;
    }
    levels
}

/// Reverse edges: for every module, the modules that require it (sorted; empty if none).
pub fn dependents(modules: &BTreeMap<String, ModuleSpec>) -> BTreeMap<String, Vec<String>> {
    let mut reverse: BTreeMap<String, Vec<String>> = modules.keys().map(|k| (k.clone(), Vec::new())).collect();
    for (name, targets) in edges(modules) {
        for target in targets {
            if let Some(list) = reverse.get_mut(&target) {
                list.push(name.clone());
            }
        }
    }
    for list in reverse.values_mut() {
        list.sort();
        list.dedup();
    }
    reverse
}

/// A cycle, if any, as a closed path: `["a", "b", "c", "a"]`. Searches from names in order and follows
/// edges in the given order, so the answer is deterministic.
pub fn find_cycle(edges: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in edges.keys() {
        if let Some(cycle) = cycle_from(edges, start, &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Iterative depth-first search from `start` (no recursion: the graph comes from user input).
fn cycle_from<'e>(
    edges: &'e BTreeMap<String, Vec<String>>,
    start: &'e str,
    done: &mut BTreeSet<&'e str>,
) -> Option<Vec<String>> {
    if done.contains(start) {
        return None;
    }
    // The current path, each with the index of the next edge to follow.
    let mut path: Vec<(&str, usize)> = vec![(start, 0)];
    while let Some((node, next)) = path.last_mut() {
        let targets = edges.get(*node).map(Vec::as_slice).unwrap_or_default();
        let Some(target) = targets.get(*next) else {
            done.insert(node);
            path.pop();
            continue;
        };
        *next += 1;
        let target = target.as_str();
        if let Some(at) = path.iter().position(|(n, _)| *n == target) {
            let mut cycle: Vec<String> = path[at..].iter().map(|(n, _)| n.to_string()).collect();
            cycle.push(target.to_string());
            return Some(cycle);
        }
        if !done.contains(target) {
            path.push((target, 0));
        }
    }
    None
}

/// One cycle per strongly connected component that has one, so that separate cycles are all reported
/// but one tangle is reported once.
pub fn cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    components(edges)
        .into_iter()
        .filter_map(|component| {
            let inner: BTreeMap<String, Vec<String>> = component
                .iter()
                .map(|n| {
                    let targets = edges.get(n).into_iter().flatten().filter(|t| component.contains(*t)).cloned();
                    (n.clone(), targets.collect())
                })
                .collect();
            find_cycle(&inner)
        })
        .collect()
}

/// Strongly connected components (Kosaraju, iterative), each as a set of names.
fn components(edges: &BTreeMap<String, Vec<String>>) -> Vec<BTreeSet<String>> {
    let empty = Vec::new();
    let targets = |n: &str| edges.get(n).unwrap_or(&empty);
    // 1. Order nodes by DFS finish time.
    let mut finished: Vec<&str> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for start in edges.keys() {
        if !seen.insert(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.last_mut() {
            match targets(node).get(*next) {
                Some(t) => {
                    *next += 1;
                    if edges.contains_key(t) && seen.insert(t) {
                        stack.push((t, 0));
                    }
                }
                None => {
                    finished.push(node);
                    stack.pop();
                }
            }
        }
    }
    // 2. Walk the reversed graph in reverse finish order.
    let mut reverse: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, tos) in edges {
        for to in tos.iter().filter(|t| edges.contains_key(*t)) {
            reverse.entry(to.as_str()).or_default().push(from.as_str());
        }
    }
    let mut assigned: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for &root in finished.iter().rev() {
        if !assigned.insert(root) {
            continue;
        }
        let mut component = BTreeSet::from([root.to_string()]);
        let mut todo = vec![root];
        while let Some(node) = todo.pop() {
            for &from in reverse.get(node).into_iter().flatten() {
                if assigned.insert(from) {
                    component.insert(from.to_string());
                    todo.push(from);
                }
            }
        }
        out.push(component);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        spec.iter().map(|(n, ts)| (n.to_string(), ts.iter().map(|t| t.to_string()).collect())).collect()
    }

    #[test]
    fn levels_are_topological_and_sorted() {
        let g = graph(&[
            ("api", &["db", "queue"]),
            ("db", &[]),
            ("queue", &[]),
            ("web", &["api"]),
            ("worker", &["queue", "db"]),
        ]);
        assert_eq!(levels(&g), vec![vec!["db", "queue"], vec!["api", "worker"], vec!["web"]]);
    }

    #[test]
    fn finds_cycles_as_closed_paths() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
        assert_eq!(find_cycle(&graph(&[("a", &["b"]), ("b", &[])])), None);
        assert_eq!(find_cycle(&graph(&[("a", &["a"])])), Some(vec!["a".into(), "a".into()]));
    }

    #[test]
    fn reports_one_cycle_per_tangle() {
        let g = graph(&[("a", &["b"]), ("b", &["a", "c"]), ("c", &["b"]), ("x", &["y"]), ("y", &["x"]), ("z", &["a"])]);
        let found = cycles(&g);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.contains(&vec!["x".to_string(), "y".into(), "x".into()]));
    }

    #[test]
    fn a_leftover_cycle_is_a_last_level() {
        let g = graph(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        assert_eq!(levels(&g), vec![vec!["c"], vec!["a", "b"]]);
    }
}
