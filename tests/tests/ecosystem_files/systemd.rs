//! systemd: one hardened instance per port from the env file, a migration
//! unit, and `systemd-analyze verify` where systemd is installed.

use std::collections::BTreeMap;
use std::process::Command;

use stream_limit_tests::nginx;
use stream_limit_tests::service;

use crate::files::read;
use crate::settings::fleet_settings;
use crate::INSTALLED;

/// `(section, key, value)` of a unit file, in order.
fn unit(relative: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in read(relative).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        } else {
            panic!("{relative}: not a unit line: {line}");
        }
    }
    entries
}

fn unit_values<'a>(entries: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(section, k, _)| section == "Service" && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

/// `KEY=VALUE` lines of an environment file.
fn env_file(relative: &str) -> BTreeMap<String, String> {
    read(relative)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{relative}: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn systemd_runs_one_hardened_instance_per_port_from_the_env_file() {
    let template = unit("ecosystem/systemd/stream-limit@.service");
    assert_eq!(unit_values(&template, "ExecStart"), [INSTALLED]);
    assert_eq!(unit_values(&template, "Environment"), ["PORT=%i"]);
    let env_path = unit_values(&template, "EnvironmentFile");
    assert_eq!(env_path, ["/etc/stream-limit/stream-limit.env"]);
    assert_eq!(unit_values(&template, "KillSignal"), ["SIGTERM"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("DynamicUser", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(unit_values(&template, key), [value], "{key}");
    }

    // The example env file, as instance 8081 would get it.
    let mut env = env_file("ecosystem/systemd/stream-limit.env.example");
    env.insert("PORT".into(), "8081".into());
    let loaded = fleet_settings("stream-limit.env.example", &env);
    assert_eq!(loaded.server.port, 8081);
    let stop: u64 = unit_values(&template, "TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > loaded.server.shutdown_timeout_secs,
        "systemd must outwait the drain"
    );

    let migrate = unit("ecosystem/systemd/stream-limit-migrate.service");
    assert_eq!(
        unit_values(&migrate, "ExecStart"),
        [format!("{INSTALLED} migrate")]
    );
    assert_eq!(unit_values(&migrate, "EnvironmentFile"), env_path);
    assert_eq!(unit_values(&migrate, "Type"), ["oneshot"]);

    // The README's instances are nginx's upstream servers.
    let readme = read("ecosystem/README.md");
    for port in nginx::published_instance_ports(&read(nginx::UPSTREAMS)) {
        assert!(
            readme.contains(&format!("stream-limit@{port}")),
            "README starts stream-limit@{port}"
        );
    }

    verify_with_systemd_analyze();
}

/// `systemd-analyze verify` where systemd is installed (not in every
/// container); the checks above run everywhere.
fn verify_with_systemd_analyze() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: units checked by this test's parser only");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    // verify wants ExecStart to exist: point it at the freshly built binary.
    let binary = service::binary().display().to_string();
    for name in [
        "stream-limit@.service",
        "stream-limit-migrate.service",
        "stream-limit.target",
    ] {
        let text = read(&format!("ecosystem/systemd/{name}")).replace(INSTALLED, &binary);
        std::fs::write(dir.path().join(name), text).expect("write unit");
    }
    std::fs::copy(
        dir.path().join("stream-limit@.service"),
        dir.path().join("stream-limit@8081.service"),
    )
    .expect("instance unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("stream-limit@8081.service"))
        .arg(dir.path().join("stream-limit-migrate.service"))
        .arg(dir.path().join("stream-limit.target"))
        .output()
        .expect("run systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&output.stderr);
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains(&*dir.path().to_string_lossy()) || l.contains("stream-limit"))
        .collect();
    assert!(
        output.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
}
