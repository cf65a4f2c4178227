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

/// `${NAME:-default}` as compose expands it when NAME is unset.
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
        out.push_str(
            inner
                .split_once(":-")
                .map(|(_, default)| default)
                .unwrap_or(""),
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_environment() -> BTreeMap<String, String> {
    let docs = YamlLoader::load_from_str(&workspace_file("deploy/docker-compose.yml"))
        .expect("compose file is YAML");
    let service = &docs[0]["services"]["authcheck"];
    assert!(
        !service.is_badvalue(),
        "the compose file has an authcheck service"
    );
    let Yaml::Hash(environment) = &service["environment"] else {
        panic!("authcheck.environment is a mapping")
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
async fn the_binary_starts_with_the_compose_environment() {
    let mut env = compose_environment();
    assert_eq!(env["AUTHCHECK_SMTP_LISTEN"], "0.0.0.0:2525");
    assert_eq!(env["AUTHCHECK_HTTP_LISTEN"], "0.0.0.0:8080");
    assert!(env["AUTHCHECK_DATABASE_URL"].starts_with("postgres://authcheck:"));
    let Ok(test_database) = std::env::var("AUTHCHECK_TEST_POSTGRES_URL") else {
        eprintln!("skipped: AUTHCHECK_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return;
    };
    // The compose network's host `postgres` does not exist here: point at the test server.
    // Every other variable is exactly as the compose file gives it.
    env.insert("AUTHCHECK_DATABASE_URL".into(), test_database);
    // Distinct ports, so this can run beside the Dockerfile test.
    env.insert("AUTHCHECK_SMTP_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("AUTHCHECK_HTTP_LISTEN".into(), "127.0.0.1:28080".into());
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with_env(&env, dir.path()).await;
    assert!(
        healthy("http://127.0.0.1:28080/healthz").await,
        "/healthz answers"
    );
    let _ = child.kill().await;
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
    assert!(healthcheck.contains("http://127.0.0.1:8080/healthz"));
    // Inside a container the ports are private; here another process may hold them.
    env.insert("AUTHCHECK_SMTP_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("AUTHCHECK_HTTP_LISTEN".into(), "127.0.0.1:28081".into());
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with_env(&env, dir.path()).await;
    assert!(
        healthy("http://127.0.0.1:28081/healthz").await,
        "/healthz answers"
    );
    assert!(
        dir.path().join("data/authcheck.db").exists(),
        "SQLite data goes to the volume folder"
    );
    let _ = child.kill().await;
}
