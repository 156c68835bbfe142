//! `ecosystem/prometheus` and `ecosystem/grafana` against a real Prometheus
//! scraping a real fleet (three instances, nginx, Postgres of the test's
//! own):
//!
//! - promtool accepts the configuration and the rules, passes the rules'
//!   unit tests, and finds nothing to lint in a real `/metrics` scrape;
//! - every PromQL expression of the dashboard, every recording rule (and the
//!   series it records) and every alert's signal returns data, so a renamed
//!   metric or label fails here;
//! - an instance that stops puts `StreamLimitInstanceDown` in pending (or
//!   firing), and so does a stopped Postgres for `StreamLimitStoreUnreachable`
//!   on an idle fleet, and for `StreamLimitDegradedAdmissions` once a start
//!   is admitted without the store, each within a bounded time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use stream_limit_tests::fleet::{answer, Fleet};
use stream_limit_tests::postgres::{start_custom_cluster, ClusterSetup};
use stream_limit_tests::prometheus::{promtool, Prometheus, DIRECTORY};
use stream_limit_tests::service::workspace_root;
use yaml_rust2::YamlLoader;

/// What Grafana's `$__rate_interval` is taken to be: four scrapes and more.
const RATE_INTERVAL: &str = "10s";
/// Longest wait for anything Prometheus should see.
const PATIENCE: Duration = Duration::from_secs(45);

/// Every expression to evaluate: (where it comes from, PromQL).
fn expressions() -> Vec<(String, String)> {
    let mut all = Vec::new();
    let root = workspace_root();
    for file in ["rules/recording.yml", "rules/alerts.yml"] {
        let text = std::fs::read_to_string(root.join(DIRECTORY).join(file)).expect("rules");
        let docs = YamlLoader::load_from_str(&text).expect("YAML");
        for group in docs[0]["groups"].as_vec().expect("groups") {
            for rule in group["rules"].as_vec().expect("rules") {
                let expr = rule["expr"].as_str().expect("expr").trim().to_owned();
                if let Some(record) = rule["record"].as_str() {
                    all.push((format!("recording rule {record}"), expr));
                    all.push((format!("recorded series {record}"), record.to_owned()));
                } else {
                    let alert = rule["alert"].as_str().expect("alert or record");
                    all.push((format!("alert {alert}"), alert_signal(alert, &expr)));
                }
            }
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("ecosystem/grafana/dashboards/stream-limit.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            all.push((
                format!("panel {:?} {}", panel["title"], target["refId"]),
                expr.replace("$__rate_interval", RATE_INTERVAL),
            ));
        }
    }
    all
}

/// An alert's signal: `expr` without its final `<comparison> <threshold>`,
/// the form every alert of the file has (so that what it compares can be
/// checked for data while the alert is quiet).
fn alert_signal(alert: &str, expr: &str) -> String {
    let mut parts = expr.rsplitn(3, ' ');
    let (threshold, comparison, signal) = (parts.next(), parts.next(), parts.next());
    assert!(
        threshold.is_some_and(|t| t.parse::<f64>().is_ok())
            && comparison.is_some_and(|c| ["==", "!=", ">", "<", ">=", "<="].contains(&c)),
        "{alert}: expected `<signal> <comparison> <number>`, got {expr}"
    );
    signal.expect("a signal").to_owned()
}

/// Waits (bounded) until `alert` is pending or firing; returns its state and
/// how long that took.
async fn await_alert(prometheus: &Prometheus, alert: &str) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let alerts = prometheus.alerts().await.expect("the alerts API answers");
        if let Some(found) = alerts.iter().find(|a| a["labels"]["alertname"] == alert) {
            let state = found["state"].as_str().unwrap_or_default().to_owned();
            return (state, started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{alert} neither pending nor firing after {PATIENCE:?}; alerts: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_evaluates_every_expression_and_alerts_on_a_real_fleet() {
    let test_started = Instant::now();
    let phase = |name: &str| println!("{:>6.1} s  {name}", test_started.elapsed().as_secs_f64());
    let root = workspace_root();
    let dir = root.join(DIRECTORY);
    promtool(&dir, &["check", "config", "prometheus.yml"], None).expect("check config");
    promtool(
        &dir,
        &["check", "rules", "rules/recording.yml", "rules/alerts.yml"],
        None,
    )
    .expect("check rules");
    promtool(&dir, &["test", "rules", "tests/alerts_test.yml"], None).expect("rule unit tests");

    phase("promtool checks done");
    let cluster = start_custom_cluster(&ClusterSetup::default()).expect("a Postgres of our own");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    // A sweeper tick a second: store_up and the lease gauges move without traffic.
    let mut fleet = Fleet::start_on(&url, &[("STREAM_LIMIT__SWEEPER__INTERVAL_SECS", "1")]).await;
    phase("fleet up");
    let targets: Vec<String> = fleet
        .instances
        .iter()
        .map(|i| format!("127.0.0.1:{}", i.port()))
        .collect();
    let prometheus = Prometheus::start(&targets).await;
    promtool(
        prometheus.dir(),
        &["check", "config", "prometheus.yml"],
        None,
    )
    .expect("the test's configuration is valid too");

    phase("prometheus up");
    let scrape = answer(fleet.http.get(fleet.instances[0].url("/metrics"))).await;
    promtool(&dir, &["check", "metrics"], Some(scrape.body.as_bytes()))
        .expect("a real scrape passes promtool's lint");

    // Traffic on every route family, through the load balancer.
    let get = |path: &str| fleet.http.get(fleet.lb(path));
    for _ in 0..4 {
        answer(get("/api/startstream/42")).await;
    }
    answer(get(
        "/api/startstream/43?streamId=3f9d2c1e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
    ))
    .await;
    answer(get(
        "/api/startstream/43?streamId=3f9d2c1e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
    ))
    .await;
    answer(get("/api/endstream/42")).await;
    answer(get("/watch").header("Session-Id", "prometheus-test")).await;
    answer(fleet.http.post(fleet.lb("/api/users/44/streams"))).await;
    answer(get("/nowhere")).await;

    // Every expression returns data once a few scrapes and evaluations are in.
    let all = expressions();
    let started = Instant::now();
    let missing = loop {
        let mut missing = Vec::new();
        for (origin, expr) in &all {
            match prometheus.query(expr).await {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => missing.push(format!("{origin}: no data for {expr}")),
                Err(error) => missing.push(format!("{origin}: {error} for {expr}")),
            }
        }
        if missing.is_empty() || started.elapsed() > PATIENCE {
            break missing;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} expressions failed:\n{}\n{}",
        missing.len(),
        all.len(),
        missing.join("\n"),
        prometheus.log()
    );
    println!(
        "{} PromQL expressions returned data after {:.1} s:",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    for (origin, expr) in &all {
        println!("  {origin}: {expr}");
    }
    let healthy: BTreeSet<String> = prometheus
        .targets()
        .await
        .expect("the targets API answers")
        .iter()
        .filter(|t| t["health"] == "up")
        .map(|t| {
            t["labels"]["instance"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        healthy,
        targets.iter().cloned().collect(),
        "every instance is scraped"
    );
    let quiet = prometheus.alerts().await.expect("the alerts API answers");
    assert!(
        quiet.is_empty(),
        "a healthy fleet raises no alert: {quiet:?}"
    );

    phase("every expression returned data");
    // One instance goes away.
    fleet.instances[2].kill();
    let (state, after) = await_alert(&prometheus, "StreamLimitInstanceDown").await;
    println!(
        "StreamLimitInstanceDown {state} {:.1} s after the kill",
        after.as_secs_f64()
    );

    // Postgres goes away, and no request comes: the sweeper's ticks notice.
    cluster.kill().expect("stop Postgres");
    let (state, after) = await_alert(&prometheus, "StreamLimitStoreUnreachable").await;
    println!(
        "StreamLimitStoreUnreachable {state} {:.1} s after Postgres stopped",
        after.as_secs_f64()
    );
    let down: Vec<Value> = prometheus
        .alerts()
        .await
        .expect("the alerts API answers")
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "StreamLimitStoreUnreachable")
        .collect();
    assert!(
        down.iter().all(|a| a["annotations"]["action"]
            .as_str()
            .is_some_and(|s| s.contains("pg_isready"))),
        "the alert says what to do: {down:?}"
    );

    // With on_store_error = allow, starts are admitted without the store.
    let started = Instant::now();
    for user in 100..110 {
        let start = answer(
            fleet
                .http
                .get(fleet.lb(&format!("/api/startstream/{user}"))),
        )
        .await;
        assert_eq!(
            start.json()["streamStatus"]["degraded"],
            true,
            "{}",
            start.body
        );
    }
    let (state, _) = await_alert(&prometheus, "StreamLimitDegradedAdmissions").await;
    println!(
        "StreamLimitDegradedAdmissions {state} {:.1} s after the first degraded start",
        started.elapsed().as_secs_f64()
    );
    phase("alerts seen; stopping the fleet");
}
