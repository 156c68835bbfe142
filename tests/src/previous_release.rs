//! The previous release's `stream-limit-http`, built from its commit, so a
//! test can run it beside this one on the same database, as a fleet does
//! halfway through a rolling upgrade.
//!
//! Its source comes from this repository's history (`git archive`, so the
//! checkout is untouched) into `target/previous-release/<commit>/`. The build
//! shares this workspace's build directory (`build.build-dir`), so the
//! dependencies both releases have in common compile once; its binary lands
//! in its own target directory and never replaces this release's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::service::{target_dir, workspace_root};

/// The previous release: the last landed one (the batched Postgres store and
/// the rollback tolerance, schema version 3), before take-over added version 4.
/// Move it forward when a release is cut. (The release before it, 8d22139,
/// refuses a schema newer than its own, so it cannot share a database with a
/// release that adds a migration.)
pub const COMMIT: &str = "134e3dec9fe82dfece13f5f048f489b704128490";

/// Path of the previous release's binary, built on first use (debug profile).
///
/// Panics, naming the cause, when the commit is not in this clone (a shallow
/// clone: `git fetch --unshallow`) or the build fails.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let home = target_dir().join("previous-release").join(&COMMIT[..12]);
        let source = home.join("source");
        if !source.join("Cargo.toml").exists() {
            extract(&source);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let build_dir = format!("build.build-dir={:?}", target_dir().display().to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--locked", "-p", "stream-limit-http"])
            .args(["--bin", "stream-limit-http", "--manifest-path"])
            .arg(source.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(home.join("target"))
            .args(["--config", &build_dir])
            .status()
            .expect("run cargo build for the previous release");
        assert!(
            status.success(),
            "cargo build of the previous release failed"
        );
        home.join("target").join("debug").join("stream-limit-http")
    })
}

/// Writes the commit's tree into `source`, through a sibling directory so an
/// interrupted extraction is never mistaken for a complete one.
fn extract(source: &Path) {
    let root = workspace_root();
    let known = Command::new("git")
        .args(["cat-file", "-e", &format!("{COMMIT}^{{commit}}")])
        .current_dir(&root)
        .status()
        .expect("run git");
    assert!(
        known.success(),
        "the previous release {COMMIT} is not in this clone; a shallow clone needs `git fetch --unshallow`"
    );
    let partial = source.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).expect("create the extraction directory");
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", COMMIT])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run git archive");
    let unpacked = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&partial)
        .stdin(archive.stdout.take().expect("git archive's output"))
        .status()
        .expect("run tar");
    let archived = archive.wait().expect("git archive ran");
    assert!(
        archived.success() && unpacked.success(),
        "extracting {COMMIT} failed"
    );
    std::fs::rename(&partial, source).expect("move the extracted source into place");
}
