//! The deployment files, checked without a Docker engine: the compose file parses and the binary
//! starts with the environment it gives; the image's own environment (Dockerfile `ENV`) starts
//! the service and its `HEALTHCHECK` URL answers.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use support::{PATIENCE, binary, eventually, http};
use tokio::io::AsyncBufReadExt;
use yaml_rust2::{Yaml, YamlLoader};

fn workspace_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// What an operator sets for the compose file's required variables (`${NAME:?message}`).
const OPERATOR_SETS: [(&str, &str); 4] = [
    ("TESTER_DOMAIN", "tester.test"),
    ("TESTER_HOSTNAME", "mx.tester.test"),
    ("TESTER_PUBLIC_URL", "https://tester.test"),
    ("POSTGRES_PASSWORD", "s3cret"),
];

/// `${NAME:-default}` as compose expands it when NAME is unset, and `${NAME:?message}` (which
/// compose refuses to start without) as the operator sets it in [`OPERATOR_SETS`].
fn expand_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("closing brace");
        let inner = &rest[start + 2..end];
        if let Some((name, _)) = inner.split_once(":?") {
            let set = OPERATOR_SETS.iter().find(|(set, _)| *set == name);
            out.push_str(set.unwrap_or_else(|| panic!("a value for {name}")).1);
        } else {
            out.push_str(
                inner
                    .split_once(":-")
                    .map(|(_, default)| default)
                    .unwrap_or(""),
            );
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_file() -> Yaml {
    YamlLoader::load_from_str(&workspace_file("deploy/docker-compose.yml"))
        .expect("compose file is YAML")
        .remove(0)
}

/// A compose service's `environment` mapping, with `${NAME:-default}` expanded.
fn environment_of(service: &Yaml) -> BTreeMap<String, String> {
    assert!(!service.is_badvalue(), "the compose file has this service");
    let Yaml::Hash(environment) = &service["environment"] else {
        panic!("environment is a mapping")
    };
    environment
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                expand_defaults(v.as_str().expect("string values")),
            )
        })
        .collect()
}

/// Both tests start the service on the image's fixed ports, so they take turns.
static FIXED_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start_with_env(
    env: &BTreeMap<String, String>,
    dir: &std::path::Path,
) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(binary())
        .arg("serve")
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start authcheck");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("ready in time")
        .unwrap();
    assert!(
        ready.is_some_and(|l| l.contains("listening")),
        "authcheck did not start with this environment"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn healthy(url: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        let response = http().get(url).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn the_binary_starts_with_the_compose_environment() {
    // No placeholder stands in for what only the operator knows: compose refuses to start
    // until each is set, rather than linking results to example.com.
    let raw = workspace_file("deploy/docker-compose.yml");
    for (name, _) in OPERATOR_SETS {
        assert!(raw.contains(&format!("${{{name}:?")), "{name} is required");
        assert!(
            !raw.contains(&format!("${{{name}:-")),
            "{name} has no default"
        );
    }
    let compose = compose_file();
    let authcheck = &compose["services"]["authcheck"];
    let ports: Vec<&str> = authcheck["ports"]
        .as_vec()
        .expect("authcheck.ports is a list")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        ports.contains(&"25:2525"),
        "the host's port 25 goes to 2525: {ports:?}"
    );
    assert!(
        ports.contains(&"127.0.0.1:9090:9090"),
        "the operators' listener is published on the host's loopback only: {ports:?}"
    );
    let healthcheck: Vec<&str> = authcheck["healthcheck"]["test"]
        .as_vec()
        .expect("authcheck.healthcheck.test is a list")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        healthcheck.contains(&"http://127.0.0.1:9090/readyz"),
        "the compose healthcheck asks for readiness: {healthcheck:?}"
    );

    let mut env = environment_of(authcheck);
    let postgres = environment_of(&compose["services"]["postgres"]);
    let database = reqwest::Url::parse(&env["AUTHCHECK_DATABASE_URL"]).expect("a database URL");
    assert_eq!(database.scheme(), "postgres");
    assert_eq!(
        database.host_str(),
        Some("postgres"),
        "the compose service's name"
    );
    assert_eq!(database.username(), postgres["POSTGRES_USER"]);
    assert_eq!(
        database.password(),
        Some(postgres["POSTGRES_PASSWORD"].as_str())
    );
    assert_eq!(database.path(), format!("/{}", postgres["POSTGRES_DB"]));

    // Every variable is exactly as the compose file gives it, but for the database: the
    // compose network's host `postgres` does not exist here, so the test server stands in.
    let test_database =
        std::env::var("AUTHCHECK_TEST_POSTGRES_URL").expect("AUTHCHECK_TEST_POSTGRES_URL");
    env.insert("AUTHCHECK_DATABASE_URL".into(), test_database);
    let _turn = FIXED_PORTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with_env(&env, dir.path()).await;
    assert!(
        healthy("http://127.0.0.1:9090/readyz").await,
        "/readyz answers"
    );
    assert_metrics_only_on_the_operators_listener().await;
    let _ = child.kill().await;
}

/// `/metrics` answers on 9090 and not on the site's 8080.
async fn assert_metrics_only_on_the_operators_listener() {
    let metrics = http()
        .get("http://127.0.0.1:9090/metrics")
        .send()
        .await
        .expect("the operators' listener answers");
    assert!(metrics.status().is_success());
    let on_site = http()
        .get("http://127.0.0.1:8080/metrics")
        .send()
        .await
        .expect("the site answers");
    assert_eq!(on_site.status(), 404, "/metrics is not on the site");
}

#[tokio::test]
async fn the_image_environment_starts_the_service_and_its_healthcheck_answers() {
    let dockerfile = workspace_file("docker/Dockerfile");
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "the image builds as CI does"
    );
    assert!(
        dockerfile.contains("USER authcheck"),
        "the image runs as a non-root user"
    );
    assert!(
        dockerfile.contains("chown authcheck:authcheck /var/lib/authcheck/data")
            && dockerfile.contains(r#"VOLUME ["/var/lib/authcheck/data"]"#),
        "the data volume exists in the image and belongs to the non-root user"
    );
    let mut env = BTreeMap::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ENV ") {
            in_env = true;
            for pair in rest.trim_end_matches('\\').split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV NAME=value");
                env.insert(k.to_string(), v.to_string());
            }
        } else if in_env {
            for pair in line.trim_end_matches('\\').split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV NAME=value");
                env.insert(k.to_string(), v.to_string());
            }
        }
        in_env = in_env && line.ends_with('\\');
    }
    assert_eq!(
        env.get("AUTHCHECK_HTTP_LISTEN").map(String::as_str),
        Some("0.0.0.0:8080")
    );
    let healthcheck = dockerfile
        .lines()
        .find(|l| l.contains("CMD curl"))
        .expect("HEALTHCHECK command");
    assert!(healthcheck.contains("http://127.0.0.1:9090/readyz"));
    assert_eq!(
        env.get("AUTHCHECK_METRICS_LISTEN").map(String::as_str),
        Some("0.0.0.0:9090")
    );
    assert!(
        dockerfile.contains("EXPOSE 2525 8080 9090"),
        "the image exposes the SMTP, HTTP and operators' ports"
    );
    let _turn = FIXED_PORTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with_env(&env, dir.path()).await;
    assert!(
        healthy("http://127.0.0.1:9090/readyz").await,
        "the HEALTHCHECK URL answers"
    );
    assert_metrics_only_on_the_operators_listener().await;
    assert!(
        dir.path().join("data/authcheck.db").exists(),
        "SQLite data goes to the volume folder"
    );
    let _ = child.kill().await;
}
