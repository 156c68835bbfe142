//! pm2: `ecosystem.config.js` (evaluated by node) runs the binary on the ports
//! nginx balances, with settings the service accepts, and stops it gracefully.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use stream_limit_tests::nginx;
use stream_limit_tests::service::workspace_root;

use crate::files::read;
use crate::settings::fleet_settings;
use crate::BINARY;

/// `ecosystem.config.js` as pm2 sees it, evaluated by node with `env`.
fn pm2_config(env: &[(&str, &str)]) -> Result<Value, String> {
    let node = Command::new("node")
        .arg("-e")
        .arg("console.log(JSON.stringify(require(process.argv[1])))")
        .arg(workspace_root().join("ecosystem/pm2/ecosystem.config.js"))
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output();
    let output = node.unwrap_or_else(|e| {
        panic!(
            "node is needed to evaluate ecosystem/pm2/ecosystem.config.js ({e}); \
             install nodejs (apt-get install -y nodejs)"
        )
    });
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("pm2 config as JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn pm2_runs_instances_on_the_ports_nginx_balances_and_stops_them_gracefully() {
    let url = "postgres://u:p@db.invalid:5432/streams";
    let config = pm2_config(&[("DATABASE_URL", url)]).expect("the pm2 file evaluates");
    let apps = config["apps"].as_array().expect("apps");
    let upstream_ports = nginx::published_instance_ports(&read(nginx::UPSTREAMS));
    assert_eq!(
        apps.len(),
        upstream_ports.len(),
        "one app per nginx upstream server"
    );
    let mut ports = Vec::new();
    for app in apps {
        let name = app["name"].as_str().expect("name");
        let script = app["script"].as_str().expect("script");
        assert!(
            script.ends_with(&format!("/{BINARY}")),
            "{name} runs {script}"
        );
        assert_eq!(app["interpreter"], "none", "{name}: a native binary");
        assert_eq!(app["exec_mode"], "fork", "{name}");
        // pm2 7 ignores a per-app kill_signal (it sends its daemon's
        // PM2_KILL_SIGNAL, SIGINT by default, which the service drains on):
        // the file must not promise one.
        assert!(
            app.get("kill_signal").is_none(),
            "{name}: pm2 ignores kill_signal"
        );
        for (label, extra) in [("env", "env"), ("env_production", "env_production")] {
            let mut env: BTreeMap<String, String> = app["env"]
                .as_object()
                .expect("env")
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect();
            if let Some(more) = app[extra].as_object() {
                for (k, v) in more {
                    env.insert(
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    );
                }
            }
            let loaded = fleet_settings(&format!("pm2 {name} {label}"), &env);
            let kill_timeout = app["kill_timeout"].as_u64().expect("kill_timeout");
            assert!(
                kill_timeout > loaded.server.shutdown_timeout_secs * 1000,
                "{name}: pm2 must wait longer than server.shutdown_timeout_secs before SIGKILL"
            );
            if label == "env" {
                ports.push(loaded.server.port);
            }
        }
        assert_eq!(app["env"]["DATABASE_URL"], url, "{name}");
    }
    assert_eq!(
        ports, upstream_ports,
        "pm2 ports are nginx's upstream servers"
    );
    assert!(
        ports.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ports: {ports:?}"
    );

    let five = pm2_config(&[
        ("DATABASE_URL", url),
        ("STREAM_LIMIT_INSTANCES", "5"),
        ("STREAM_LIMIT_BASE_PORT", "9001"),
    ])
    .expect("the pm2 file evaluates");
    let ports: Vec<&str> = five["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|app| app["env"]["PORT"].as_str())
        .collect();
    assert_eq!(ports, ["9001", "9002", "9003", "9004", "9005"]);

    let refused = pm2_config(&[]).expect_err("a fleet without a database is refused");
    assert!(refused.contains("DATABASE_URL"), "{refused}");
}
