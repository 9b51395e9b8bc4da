//! Enforces the crate layering written in ARCHITECTURE.md: a crate's normal dependencies on
//! other Threadline crates point to lower layers only, and the test utilities are never a
//! normal dependency.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::BTreeMap;

/// Layer of every workspace crate; keep in step with ARCHITECTURE.md.
const LAYERS: &[(&str, u32)] = &[
    ("threadline-core", 0),
    ("threadline-proto", 0),
    ("threadline-api-types", 1),
    ("threadline-config", 1),
    ("threadline-engine", 2),
    ("threadline-storage", 2),
    ("threadline-ingest", 3),
    ("threadline-query", 3),
    ("threadline-sim", 3),
    ("threadline-server", 4),
    ("threadline", 5),
];

#[test]
fn dependencies_point_down_only() {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if name == "threadline-testsuite" {
            continue;
        }
        let Some(&layer) = layers.get(name) else {
            violations.push(format!("{name} has no layer: add it to LAYERS and ARCHITECTURE.md"));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if !dep_name.starts_with("threadline") || dep["kind"].as_str() == Some("dev") {
                continue;
            }
            match layers.get(dep_name) {
                Some(&dep_layer) if dep_layer < layer => {}
                Some(&dep_layer) => violations.push(format!(
                    "{name} (layer {layer}) depends on {dep_name} (layer {dep_layer})"
                )),
                None => {
                    violations.push(format!("{name} depends on {dep_name}, which is test-only"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}
