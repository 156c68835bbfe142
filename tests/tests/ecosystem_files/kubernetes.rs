//! Kubernetes: probes, ports, selectors and secrets of the manifests fit
//! together and the service accepts the containers' environments.

use std::collections::{BTreeMap, BTreeSet};

use yaml_rust2::Yaml;

use crate::files::{ecosystem_files, map, scalar, strings, text, yaml};
use crate::settings::fleet_settings;
use crate::{BINARY, LIVENESS, READINESS};

/// Every manifest of ecosystem/kubernetes, by kind.
fn manifests() -> BTreeMap<String, Yaml> {
    let kustomization = yaml("ecosystem/kubernetes/kustomization.yaml");
    let resources = strings(&kustomization[0]["resources"]);
    let on_disk: BTreeSet<String> = ecosystem_files()
        .into_iter()
        .filter_map(|f| f.strip_prefix("ecosystem/kubernetes/").map(str::to_owned))
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(
        resources.iter().cloned().collect::<BTreeSet<_>>(),
        on_disk,
        "kustomization.yaml lists every manifest"
    );
    let mut by_kind = BTreeMap::new();
    for file in resources {
        for doc in yaml(&format!("ecosystem/kubernetes/{file}")) {
            let kind = text(&doc["kind"]);
            assert!(by_kind.insert(kind.clone(), doc).is_none(), "one {kind}");
        }
    }
    by_kind
}

/// `selector` is a subset of `labels`.
fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    let (selector, labels) = (map(selector), map(labels));
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container's environment: `env` values, secrets resolved, plus `envFrom` config maps.
fn container_env(container: &Yaml, k8s: &BTreeMap<String, Yaml>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_vec().into_iter().flatten() {
        let name = text(&source["configMapRef"]["name"]);
        assert_eq!(text(&k8s["ConfigMap"]["metadata"]["name"]), name);
        env.extend(map(&k8s["ConfigMap"]["data"]));
    }
    for var in container["env"].as_vec().into_iter().flatten() {
        let name = text(&var["name"]);
        let value = if let Some(value) = scalar(&var["value"]) {
            value
        } else {
            let secret = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(
                text(&secret["name"]),
                text(&k8s["Secret"]["metadata"]["name"])
            );
            map(&k8s["Secret"]["stringData"])
                .remove(&text(&secret["key"]))
                .unwrap_or_else(|| panic!("the Secret has no {}", text(&secret["key"])))
        };
        env.insert(name, value);
    }
    env
}

#[test]
fn kubernetes_probes_ports_selectors_and_secrets_fit_together() {
    let k8s = manifests();
    let deployment = &k8s["Deployment"];
    let name = text(&deployment["metadata"]["name"]);
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        labels
    ));
    let container = &pod["spec"]["containers"][0];
    assert!(text(&container["image"]).contains(BINARY));
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );

    let loaded = fleet_settings("Deployment", &container_env(container, &k8s));
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_i64(),
        Some(i64::from(loaded.server.port))
    );
    let port_name = text(&port["name"]);
    for (probe, path) in [
        ("readinessProbe", READINESS),
        ("livenessProbe", LIVENESS),
        ("startupProbe", LIVENESS),
    ] {
        assert_eq!(text(&container[probe]["httpGet"]["path"]), path, "{probe}");
        assert_eq!(
            text(&container[probe]["httpGet"]["port"]),
            port_name,
            "{probe}"
        );
    }
    let pause: u64 = strings(&container["lifecycle"]["preStop"]["exec"]["command"])
        .last()
        .and_then(|s| s.parse().ok())
        .expect("preStop sleep seconds");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace");
    assert!(
        u64::try_from(grace).unwrap_or(0) > pause + loaded.server.shutdown_timeout_secs,
        "the pod must outlive the preStop pause plus the drain"
    );

    let service = &k8s["Service"];
    assert!(selects(&service["spec"]["selector"], labels));
    assert_eq!(text(&service["spec"]["ports"][0]["targetPort"]), port_name);

    let hpa = &k8s["HorizontalPodAutoscaler"];
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["name"]), name);
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap_or(0) >= 2);

    assert!(selects(
        &k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        labels
    ));

    let job = &k8s["Job"]["spec"]["template"]["spec"];
    let migrate = &job["containers"][0];
    assert_eq!(strings(&migrate["args"]), ["migrate"]);
    assert_eq!(
        text(&migrate["image"]),
        text(&container["image"]),
        "one image"
    );
    fleet_settings("migration Job", &container_env(migrate, &k8s));
}
