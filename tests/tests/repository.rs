//! The repository's own promises, read from its files: released migrations
//! never change, CI runs exactly the README's test command, and the README
//! names everything that command installs.

use std::fs;

use sha2::{Digest, Sha256};
use stream_limit_tests::service::workspace_root;

/// Every released migration and the SHA-256 of its text. A database that
/// applied a migration must never see it change (refinery refuses a divergent
/// history, and an operator's schema would silently differ from a fresh one):
/// fix a released migration with a new one. Add a line here when a migration
/// is released; never change one.
const RELEASED: &[(&str, &str)] = &[
    (
        "V1__leases.sql",
        "13640255c3a45ba0225ba202a07fef9a4e1cc7768d8f9356fadcc6e4a5781b5d",
    ),
    (
        "V2__leases_in_viewer_row.sql",
        "01696242ed501a2d6b09e4abd19e7cddc958a7a313b68edf1e43680bda4532f1",
    ),
    (
        "V3__expired_leases_never_block_a_start.sql",
        "2d2149d19e41da6fb186b7ca531363aaa0311b180636ea8778e2fcccd1315805",
    ),
    (
        "V4__replaced_streams.sql",
        "a5d98dd65dd82df7685b2fc5dda4d76202d9d96e4fa2f762aafba912b9e070d2",
    ),
];

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn released_migrations_are_never_edited() {
    for (name, released) in RELEASED {
        let text = read(&format!("migrations/{name}"));
        let now = format!("{:x}", Sha256::digest(text.as_bytes()));
        assert_eq!(
            &now, released,
            "migrations/{name} changed after its release: revert it and add a new migration"
        );
    }
}

#[test]
fn every_migration_is_listed_as_released() {
    let mut names: Vec<String> = fs::read_dir(workspace_root().join("migrations"))
        .expect("migrations/ exists")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let listed: Vec<&str> = RELEASED.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names, listed,
        "list every migration in RELEASED once it ships (and nothing else lives in migrations/)"
    );
}

#[test]
fn ci_runs_the_readme_test_command_after_fmt_and_clippy() {
    let readme = read("README.md");
    assert!(
        readme.contains("scripts/test             # the whole test suite"),
        "the README's two commands name scripts/test"
    );
    let ci = read(".ci/run");
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        commands.last(),
        Some(&"scripts/test"),
        "CI ends with the README's test command"
    );
    for gate in [
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
    ] {
        assert!(commands.contains(&gate), ".ci/run runs `{gate}`");
    }
}

#[test]
fn the_readme_names_what_the_test_command_runs_and_installs() {
    let script = read("scripts/test");
    let readme = read("README.md");
    let cargo = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("exec "))
        .expect("scripts/test ends by exec'ing cargo");
    let shown = cargo.trim_end_matches(" \"$@\"");
    assert!(
        readme.contains(&format!("`{shown}`")),
        "README shows `{shown}`"
    );
    assert!(
        shown.contains("--no-fail-fast"),
        "one failing test binary must not hide the others"
    );
    // `missing+=(package)` lines: what the script installs when absent.
    let installed: Vec<&str> = script
        .lines()
        .filter_map(|l| l.split("missing+=(").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(
        installed.len() >= 3,
        "found the install list: {installed:?}"
    );
    for package in installed {
        assert!(
            readme.contains(&format!("| `{package}` |")),
            "README's prerequisites table names the package `{package}` that scripts/test installs"
        );
    }
}
