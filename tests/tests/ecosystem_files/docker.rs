//! Docker: the image builds the binary and runs it as non-root with a
//! liveness healthcheck; compose migrates once, then runs three replicas
//! behind nginx.

use std::collections::BTreeMap;
use std::path::Path;

use stream_limit_tests::nginx;
use stream_limit_tests::service::workspace_root;

use crate::files::{map, read, strings, text, yaml};
use crate::settings::{fleet_settings, settings};
use crate::{BINARY, INSTALLED, LIVENESS};

/// Dockerfile instructions `(INSTRUCTION, arguments)`, continuation lines joined.
fn dockerfile(relative: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in read(relative).lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(partial) = trimmed.strip_suffix('\\') {
            pending.push_str(partial);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (instruction, args) = pending.split_once(' ').unwrap_or((&pending, ""));
        instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    instructions
}

#[test]
fn the_image_builds_the_binary_runs_it_as_non_root_and_checks_liveness() {
    let steps = dockerfile("ecosystem/docker/Dockerfile");
    let stages: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].0 == "FROM").collect();
    assert!(stages.len() >= 2, "multi-stage");
    assert!(
        steps[stages[0]].1.starts_with("rust:"),
        "built in a rust image"
    );
    let runtime = &steps[*stages.last().expect("a stage")..];
    let base = &runtime[0].1;
    assert!(
        base.contains("-slim") || base.contains("distroless"),
        "small runtime: {base}"
    );

    let build = steps
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build"))
        .expect("cargo build");
    assert!(
        build.1.contains("--release") && build.1.contains(&format!("-p {BINARY}")),
        "{}",
        build.1
    );
    let entrypoint = runtime
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint.1, format!(r#"["{INSTALLED}"]"#));
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=") && a.ends_with(INSTALLED)));

    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .expect("USER")
        .1
        .clone();
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "non-root: USER {user}"
    );
    assert_eq!(
        runtime
            .iter()
            .find(|(i, _)| i == "STOPSIGNAL")
            .map(|(_, a)| a.as_str()),
        Some("SIGTERM")
    );

    // ENV is the service's configuration; EXPOSE is its port.
    let mut env = BTreeMap::new();
    for (_, args) in runtime.iter().filter(|(i, _)| i == "ENV") {
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let loaded = settings("Dockerfile ENV", &env);
    let exposed = runtime.iter().find(|(i, _)| i == "EXPOSE").expect("EXPOSE");
    assert_eq!(exposed.1, loaded.server.port.to_string());

    // The healthcheck uses a tool the runtime stage installs, on liveness.
    let check = runtime
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    assert!(
        check.1.contains("curl") && check.1.contains(&format!("${{PORT}}{LIVENESS}\"")),
        "{}",
        check.1
    );
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "RUN" && a.contains("apt-get install") && a.contains("curl")));

    let ignore = read("ecosystem/docker/Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "target/ stays out of the context"
    );
}

#[test]
fn compose_migrates_once_then_runs_three_replicas_behind_nginx() {
    let docs = yaml("ecosystem/docker/docker-compose.yml");
    let services = &docs[0]["services"];
    for name in ["postgres", "migrate", "app", "nginx"] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    let (migrate, app, proxy) = (&services["migrate"], &services["app"], &services["nginx"]);

    // The build context is the repository root and names this Dockerfile.
    let compose_dir = workspace_root().join("ecosystem/docker");
    let context = compose_dir.join(text(&migrate["build"]["context"]));
    let dockerfile = context.join(text(&migrate["build"]["dockerfile"]));
    assert!(
        context.join("Cargo.toml").is_file(),
        "context is the workspace root"
    );
    assert!(dockerfile.ends_with("ecosystem/docker/Dockerfile") && dockerfile.is_file());
    assert_eq!(strings(&migrate["command"]), ["migrate"]);
    assert_eq!(text(&app["image"]), text(&migrate["image"]), "one image");
    assert_eq!(
        text(&app["depends_on"]["migrate"]["condition"]),
        "service_completed_successfully"
    );
    assert_eq!(app["deploy"]["replicas"].as_i64(), Some(3));

    let migrate_env = map(&migrate["environment"]);
    fleet_settings("compose migrate", &migrate_env);
    let env = map(&app["environment"]);
    let loaded = fleet_settings("compose app", &env);
    assert_eq!(env.get("DATABASE_URL"), migrate_env.get("DATABASE_URL"));
    let db_host = env["DATABASE_URL"]
        .split('@')
        .nth(1)
        .and_then(|h| h.split(':').next());
    assert_eq!(
        db_host,
        Some("postgres"),
        "the database is the postgres service"
    );

    let port = loaded.server.port;
    assert_eq!(strings(&app["expose"]), [port.to_string()]);
    let health = strings(&app["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("127.0.0.1:{port}{LIVENESS} ")),
        "{health}"
    );
    let grace = text(&app["stop_grace_period"]);
    let grace: u64 = grace
        .trim_end_matches('s')
        .parse()
        .expect("stop_grace_period in s");
    assert!(grace > loaded.server.shutdown_timeout_secs);

    // nginx: the published site plus the compose upstreams, on the site's port.
    let mounted: Vec<String> = strings(&proxy["volumes"]);
    for file in [nginx::SITE, nginx::UPSTREAMS_COMPOSE] {
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        let volume = mounted
            .iter()
            .find(|v| v.starts_with(&format!("../nginx/{name}:")))
            .unwrap_or_else(|| panic!("nginx mounts {file}: {mounted:?}"));
        assert!(volume.contains(":/etc/nginx/conf.d/"), "{volume}");
        assert!(compose_dir
            .join(volume.split(':').next().expect("source"))
            .is_file());
    }
    assert!(read(nginx::SITE).contains(nginx::PUBLISHED_LISTEN));
    assert_eq!(strings(&proxy["ports"]), ["8080:8080"]);
    let upstreams = read(nginx::UPSTREAMS_COMPOSE);
    assert!(
        upstreams.contains(&format!("server app:{port} ")),
        "upstreams reach app:{port}"
    );
}

#[test]
fn the_citus_compose_distributes_with_the_tested_ddl_before_the_replicas_start() {
    let docs = yaml("ecosystem/docker/docker-compose.citus.yml");
    let services = &docs[0]["services"];
    for name in [
        "coordinator",
        "worker1",
        "worker2",
        "migrate",
        "distribute",
        "app",
        "nginx",
    ] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    // The three nodes share one definition (a YAML merge of `x-citus-node`).
    for node in ["coordinator", "worker1", "worker2"] {
        let shared = &services[node]["<<"];
        assert!(
            text(&shared["image"]).starts_with("citusdata/citus:"),
            "{node}"
        );
        assert_eq!(
            text(&shared["environment"]["POSTGRES_DB"]),
            "stream_limit",
            "{node}: every node has the database, with the extension"
        );
    }
    let (migrate, distribute, app) = (
        &services["migrate"],
        &services["distribute"],
        &services["app"],
    );

    // The DDL is the file the Citus test mode runs before every test.
    let compose_dir = workspace_root().join("ecosystem/docker");
    let volumes = strings(&distribute["volumes"]);
    assert!(
        volumes
            .iter()
            .any(|v| v == "../citus/distribute.sql:/distribute.sql:ro"),
        "{volumes:?}"
    );
    assert!(compose_dir.join("../citus/distribute.sql").is_file());
    assert_eq!(
        stream_limit_tests::postgres::CITUS_DDL,
        read("ecosystem/citus/distribute.sql")
    );
    let command = strings(&distribute["command"]).join(" ");
    for step in [
        "citus_add_node('worker1', 5432)",
        "citus_add_node('worker2', 5432)",
        "-f /distribute.sql",
    ] {
        assert!(command.contains(step), "distribute runs {step}: {command}");
    }

    // Migrate, then distribute, then the replicas.
    assert_eq!(
        text(&distribute["depends_on"]["migrate"]["condition"]),
        "service_completed_successfully"
    );
    assert_eq!(
        text(&app["depends_on"]["distribute"]["condition"]),
        "service_completed_successfully"
    );
    assert_eq!(app["deploy"]["replicas"].as_i64(), Some(3));

    // Both the migration and the replicas run on the coordinator, with
    // store.citus on.
    let migrate_env = map(&migrate["environment"]);
    let env = map(&app["environment"]);
    assert!(
        fleet_settings("citus compose migrate", &migrate_env)
            .store
            .citus
    );
    assert!(fleet_settings("citus compose app", &env).store.citus);
    assert_eq!(env.get("DATABASE_URL"), migrate_env.get("DATABASE_URL"));
    let host = env["DATABASE_URL"]
        .split('@')
        .nth(1)
        .and_then(|h| h.split(':').next());
    assert_eq!(host, Some("coordinator"));
}
