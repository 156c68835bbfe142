//! Reading the files of `ecosystem/`; every YAML file parses and every file
//! is explained in `ecosystem/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use stream_limit_tests::nginx;
use stream_limit_tests::service::workspace_root;
use yaml_rust2::{Yaml, YamlLoader};

pub(crate) fn read(relative: &str) -> String {
    nginx::read(relative)
}

pub(crate) fn yaml(relative: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

/// A YAML scalar as text (numbers and booleans included).
pub(crate) fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn text(value: &Yaml) -> String {
    scalar(value).unwrap_or_else(|| panic!("expected a scalar, got {value:?}"))
}

pub(crate) fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_vec()
        .map(|items| items.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// A YAML mapping of scalars (labels, environment, data).
pub(crate) fn map(value: &Yaml) -> BTreeMap<String, String> {
    value
        .as_hash()
        .map(|hash| {
            hash.iter()
                .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `ecosystem/` (except `bench/`, which has its own owner),
/// as paths from the workspace root.
pub(crate) fn ecosystem_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read ecosystem/")
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bench") {
                    walk(&path, out);
                }
            } else if let Ok(relative) = path.strip_prefix(workspace_root()) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("ecosystem"), &mut files);
    files
}

#[test]
fn every_yaml_file_parses_and_every_file_is_explained_in_the_readme() {
    let readme = read("ecosystem/README.md");
    let files = ecosystem_files();
    assert!(files.len() >= 15, "ecosystem/ looks incomplete: {files:?}");
    for file in &files {
        if file.ends_with(".yaml") || file.ends_with(".yml") {
            let docs = yaml(file);
            assert!(!docs.is_empty(), "{file} is empty");
        }
        let name = file.strip_prefix("ecosystem/").unwrap_or(file);
        if name != "README.md" {
            assert!(
                readme.contains(name),
                "ecosystem/README.md does not say what {name} is for"
            );
        }
    }
}
