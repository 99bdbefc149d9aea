//! The crate graph that `docs/ARCHITECTURE.md` and the README describe is the one the
//! `Cargo.toml` files declare, and it goes one way: every crate depends only on crates of lower
//! layers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use leaktrace_testkit::repo;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The workspace crates a manifest depends on (normal dependencies only), without the
/// `leaktrace-` prefix.
fn workspace_deps(manifest: &Path) -> (String, BTreeSet<String>) {
    let doc: toml::Table = read(manifest).parse().expect("a valid Cargo.toml");
    let name = doc["package"]["name"]
        .as_str()
        .expect("package.name")
        .to_string();
    let deps = doc
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| {
            t.keys()
                .filter_map(|k| k.strip_prefix("leaktrace-"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (name, deps)
}

/// Every workspace package and its workspace dependencies, from the manifests.
fn declared() -> BTreeMap<String, BTreeSet<String>> {
    let root = repo();
    let doc: toml::Table = read(&root.join("Cargo.toml"))
        .parse()
        .expect("root manifest");
    let members = doc["workspace"]["members"].as_array().expect("members");
    let mut graph: BTreeMap<String, BTreeSet<String>> = members
        .iter()
        .map(|m| {
            workspace_deps(
                &root
                    .join(m.as_str().expect("member path"))
                    .join("Cargo.toml"),
            )
        })
        .collect();
    let (name, deps) = workspace_deps(&root.join("Cargo.toml"));
    graph.insert(name, deps);
    graph
}

/// The graph as `docs/ARCHITECTURE.md` states it, between its `crate-graph` markers.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = read(&repo().join("docs/ARCHITECTURE.md"));
    let begin = text
        .find("<!-- crate-graph: begin -->")
        .expect("begin marker");
    let end = text.find("<!-- crate-graph: end -->").expect("end marker");
    text[begin..end]
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .map(|l| {
            let (name, rest) = l.split_once("`:").expect("- `crate`: deps");
            let deps = rest
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty() && *d != "(none)")
                .map(str::to_string)
                .collect();
            (name.to_string(), deps)
        })
        .collect()
}

/// Each crate's layer, from the table of `docs/ARCHITECTURE.md`.
fn layers() -> BTreeMap<String, u32> {
    let text = read(&repo().join("docs/ARCHITECTURE.md"));
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let layer = cells.get(1)?.parse::<u32>().ok()?;
            let name = cells.get(2)?.split('`').nth(1)?;
            Some((name.to_string(), layer))
        })
        .collect()
}

#[test]
fn the_documented_crate_graph_is_the_declared_one() {
    assert_eq!(
        documented(),
        declared(),
        "docs/ARCHITECTURE.md's crate graph differs from the Cargo.toml files"
    );
}

#[test]
fn dependencies_point_down_the_layers() {
    let layers = layers();
    for (name, deps) in declared() {
        let own = *layers
            .get(&name)
            .unwrap_or_else(|| panic!("{name} has no layer in docs/ARCHITECTURE.md"));
        for dep in deps {
            let full = format!("leaktrace-{dep}");
            let below = layers[&full];
            assert!(
                below < own,
                "{name} (layer {own}) depends on {full} (layer {below}): layers go one way"
            );
        }
    }
}

#[test]
fn the_readme_lists_every_crate() {
    let readme = read(&repo().join("README.md"));
    let root = repo();
    let doc: toml::Table = read(&root.join("Cargo.toml"))
        .parse()
        .expect("root manifest");
    for member in doc["workspace"]["members"].as_array().expect("members") {
        let path = member.as_str().expect("member path");
        assert!(
            readme.contains(&format!("`{path}`")),
            "README.md's crate table does not name {path}"
        );
    }
}
