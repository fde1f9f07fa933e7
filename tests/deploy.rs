//! `deploy/` checked as far as a machine without a container engine can check it: every YAML and
//! JSON file parses; every file the Dockerfile, compose and kustomize name exists (or is one that
//! `yibao certs` makes, or is copied from its `.example`); every flag passed to a binary is one
//! its `--help` lists; and the ports agree — each listen address with the ports published, probed,
//! served and scraped, each peer URL with the other bureau's platform port.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every document of a YAML file.
fn yaml(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse as YAML: {e}", path.display()))
}

/// Every file under `dir` whose name ends with one of `suffixes`.
fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files_under(&path, suffixes));
        } else if suffixes
            .iter()
            .any(|suffix| path.to_string_lossy().ends_with(suffix))
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A YAML mapping with its `<<` merge keys resolved (yaml-rust2 reads them as plain keys).
fn merged(node: &Yaml) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    if let Yaml::Hash(hash) = node {
        if let Some(base) = hash.get(&Yaml::String("<<".to_owned())) {
            out.extend(merged(base));
        }
        for (key, value) in hash {
            if let Some(key) = key.as_str().filter(|key| *key != "<<") {
                out.insert(key.to_owned(), value.clone());
            }
        }
    }
    out
}

fn strings(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match item {
                    Yaml::String(text) => Some(text.clone()),
                    Yaml::Integer(number) => Some(number.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A binary's `--help` text (the binaries are built before the tests, as the README says).
fn help(binary: &str, subcommand: &[&str]) -> String {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let path = yibao_harness::locate::binary_path(&bin_dir, binary);
    let output = Command::new(&path)
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {} --help: {e}", path.display()));
    assert!(output.status.success(), "{binary} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// The `--flag` names of `args` (a `--flag=value` or `--flag value` list).
fn flag_names(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|arg| arg.starts_with("--"))
        .map(|arg| arg.split('=').next().unwrap_or(arg).to_owned())
        .collect()
}

/// Asserts that every flag is one the help text lists.
fn assert_flags_accepted(binary: &str, subcommand: &[&str], args: &[String], place: &str) {
    let text = help(binary, subcommand);
    for flag in flag_names(args) {
        let listed = text.match_indices(&flag).any(|(at, _)| {
            let next = text[at + flag.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        assert!(
            listed,
            "{place}: `{binary} {}` does not accept {flag}",
            subcommand.join(" ")
        );
    }
}

/// The value of `--flag=value` (or `--flag value`) in `args`.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(at, arg)| {
        if let Some(value) = arg.strip_prefix(&prefix) {
            Some(value.to_owned())
        } else if arg == flag {
            args.get(at + 1).cloned()
        } else {
            None
        }
    })
}

/// The port of an address (`0.0.0.0:50051`) or URL (`https://transfer-in:50062`).
fn port_of(address: &str) -> u16 {
    let port = address.rsplit(':').next().unwrap_or_default();
    let port = port.trim_end_matches('/');
    port.parse()
        .unwrap_or_else(|_| panic!("{address:?} names no port"))
}

/// The host of a URL.
fn host_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.rsplit_once(':')
        .map_or(rest, |(host, _)| host)
        .to_owned()
}

#[test]
fn every_yaml_and_json_file_in_deploy_parses() {
    let yamls = files_under(&deploy(), &[".yml", ".yaml"]);
    assert!(
        yamls.len() >= 7,
        "compose, prometheus, grafana provisioning and kustomize: found {yamls:?}"
    );
    for path in &yamls {
        assert!(!yaml(path).is_empty(), "{} is empty", path.display());
    }
    let jsons = files_under(&deploy(), &[".json"]);
    assert!(!jsons.is_empty(), "the Grafana dashboard");
    for path in &jsons {
        serde_json::from_str::<serde_json::Value>(&read(path))
            .unwrap_or_else(|e| panic!("{} does not parse as JSON: {e}", path.display()));
    }
}

/// The compose file's services, `<<` merges resolved.
fn compose_services() -> BTreeMap<String, BTreeMap<String, Yaml>> {
    let documents = yaml(&deploy().join("docker-compose.yml"));
    let services = merged(&documents[0]["services"]);
    services
        .iter()
        .map(|(name, service)| (name.clone(), merged(service)))
        .collect()
}

#[test]
fn compose_mounts_and_builds_files_that_exist() {
    let mut checked = 0;
    for (name, service) in compose_services() {
        for volume in service.get("volumes").map(strings).unwrap_or_default() {
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                let path = deploy().join(source);
                assert!(
                    path.exists(),
                    "service {name} mounts {source}, which does not exist"
                );
                checked += 1;
            }
        }
        if let Some(build) = service.get("build") {
            let context = deploy().join(build["context"].as_str().expect("a build context"));
            let dockerfile = build["dockerfile"].as_str().expect("a dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "service {name}: {dockerfile}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "mounts and builds checked: {checked}");
}

#[test]
fn compose_bureaus_pass_flags_the_binaries_accept_and_their_ports_agree() {
    let services = compose_services();
    let mut platform_ports = BTreeMap::new();
    let mut metrics_targets = BTreeSet::new();
    for bureau in ["transfer-out", "transfer-in"] {
        let service = &services[bureau];
        let entrypoint = strings(&service["entrypoint"]);
        assert_eq!(entrypoint, [format!("/usr/local/bin/{bureau}")]);
        let args = strings(&service["command"]);
        assert_flags_accepted(bureau, &[], &args, &format!("compose {bureau}"));
        let listen = port_of(&flag_value(&args, "--listen").expect("--listen"));
        let metrics = port_of(&flag_value(&args, "--metrics-listen").expect("--metrics-listen"));
        let published: Vec<u16> = strings(&service["ports"])
            .iter()
            .map(|mapping| port_of(mapping))
            .collect();
        assert!(
            published.contains(&listen),
            "{bureau} publishes its API port {listen}"
        );
        assert!(
            published.contains(&metrics),
            "{bureau} publishes its metrics port"
        );
        let check = strings(&service["healthcheck"]["test"]);
        let health_args: Vec<String> = check.iter().skip(2).cloned().collect();
        assert_eq!(check[1], "yibao");
        assert_flags_accepted("yibao", &["health"], &health_args, "compose healthcheck");
        let endpoint = flag_value(&health_args, "--endpoint").expect("--endpoint");
        assert_eq!(port_of(&endpoint), listen, "{bureau}'s health check port");
        platform_ports.insert(
            bureau,
            port_of(&flag_value(&args, "--platform-listen").expect("--platform-listen")),
        );
        metrics_targets.insert(format!("{bureau}:{metrics}"));
        for file in ["--tls-ca", "--tls-cert", "--tls-key"] {
            let path = flag_value(&args, file).expect("a TLS file");
            assert!(
                path.starts_with("/certs/"),
                "{bureau} {file} from the certs volume"
            );
        }
    }
    for (bureau, other) in [
        ("transfer-out", "transfer-in"),
        ("transfer-in", "transfer-out"),
    ] {
        let peer = flag_value(&strings(&services[bureau]["command"]), "--peer").expect("--peer");
        assert_eq!(host_of(&peer), other, "{bureau}'s peer");
        assert_eq!(
            port_of(&peer),
            platform_ports[other],
            "{bureau}'s peer port"
        );
    }
    let prometheus = yaml(&deploy().join("compose/prometheus.yml"));
    let scraped: BTreeSet<String> =
        strings(&prometheus[0]["scrape_configs"][0]["static_configs"][0]["targets"])
            .into_iter()
            .collect();
    assert_eq!(
        scraped, metrics_targets,
        "Prometheus scrapes each bureau's metrics port"
    );
}

#[test]
fn compose_makes_the_certificates_with_flags_yibao_certs_accepts() {
    let services = compose_services();
    let script = strings(&services["certs"]["command"]).join(" ");
    let start = script
        .find("yibao certs")
        .expect("the certs service runs yibao certs");
    let words: Vec<String> = script[start + "yibao certs".len()..]
        .split_whitespace()
        .take_while(|word| !word.starts_with("&&"))
        .map(str::to_owned)
        .collect();
    assert_flags_accepted("yibao", &["certs"], &words, "compose certs");
}

/// The kustomization: resources, generated ConfigMaps and Secrets.
fn kustomization() -> Yaml {
    yaml(&deploy().join("kustomization.yaml")).remove(0)
}

#[test]
fn kustomize_names_files_that_exist_or_that_yibao_certs_and_an_example_make() {
    let base = kustomization();
    for resource in strings(&base["resources"]) {
        assert!(deploy().join(&resource).is_file(), "resource {resource}");
    }
    for generator in base["configMapGenerator"].as_vec().expect("a ConfigMap") {
        for file in strings(&generator["files"]) {
            assert!(deploy().join(&file).is_file(), "ConfigMap file {file}");
        }
    }
    // The certificates are made by `yibao certs`; run it and find every file the Secret names.
    let made = tempfile::tempdir().expect("a temporary directory");
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let status = Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"))
        .args(["certs", "--out"])
        .arg(made.path().join("certs"))
        .args(["--directory"])
        .arg(deploy().join("regions.toml"))
        .args(["--host", "transfer-out", "--host", "transfer-in"])
        .status()
        .expect("run yibao certs");
    assert!(status.success(), "yibao certs");
    let mut secrets = 0;
    for generator in base["secretGenerator"].as_vec().expect("Secrets") {
        for file in strings(&generator["files"]) {
            assert!(
                made.path().join(&file).is_file(),
                "`yibao certs` makes {file}"
            );
            secrets += 1;
        }
        for env in strings(&generator["envs"]) {
            let example = deploy().join(format!("{env}.example"));
            assert!(
                example.is_file(),
                "{env} is copied from {}",
                example.display()
            );
            secrets += 1;
        }
    }
    assert!(secrets >= 6, "certificate files and the database env");
}

/// Every Deployment and Service of the kustomize resources, by kind and name.
fn manifests() -> BTreeMap<(String, String), Yaml> {
    let mut found = BTreeMap::new();
    for resource in strings(&kustomization()["resources"]) {
        for document in yaml(&deploy().join(resource)) {
            let kind = document["kind"].as_str().expect("a kind").to_owned();
            let name = document["metadata"]["name"].as_str().expect("a name");
            found.insert((kind, name.to_owned()), document.clone());
        }
    }
    found
}

#[test]
fn kubernetes_bureaus_pass_flags_the_binaries_accept_and_their_ports_agree() {
    let manifests = manifests();
    let env_keys: BTreeSet<String> = read(&deploy().join("database.env.example"))
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.to_owned()))
        .collect();
    let mut platform_ports = BTreeMap::new();
    for bureau in ["transfer-out", "transfer-in"] {
        let deployment = &manifests[&("Deployment".to_owned(), bureau.to_owned())];
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            strings(&container["command"]),
            [format!("/usr/local/bin/{bureau}")]
        );
        let args = strings(&container["args"]);
        assert_flags_accepted(bureau, &[], &args, &format!("kubernetes {bureau}"));
        let ports: BTreeMap<String, u16> = container["ports"]
            .as_vec()
            .expect("container ports")
            .iter()
            .map(|port| {
                let number = port["containerPort"].as_i64().expect("a port number");
                let name = port["name"].as_str().expect("a port name").to_owned();
                (name, u16::try_from(number).expect("a port"))
            })
            .collect();
        for (flag, name) in [
            ("--listen", "api"),
            ("--platform-listen", "platform"),
            ("--metrics-listen", "metrics"),
        ] {
            let port = port_of(&flag_value(&args, flag).expect(flag));
            assert_eq!(
                ports.get(name),
                Some(&port),
                "{bureau}: {flag} and port {name}"
            );
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            let port = container[probe]["grpc"]["port"]
                .as_i64()
                .expect("a gRPC probe");
            assert_eq!(
                i64::from(ports["api"]),
                port,
                "{bureau}'s {probe} probes the API"
            );
        }
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        let scraped = annotations["prometheus.io/port"].as_str().expect("scraped");
        assert_eq!(scraped, ports["metrics"].to_string(), "{bureau} is scraped");
        for env in container["env"].as_vec().expect("env") {
            if let Some(key) = env["valueFrom"]["secretKeyRef"]["key"].as_str() {
                assert!(
                    env_keys.contains(key),
                    "{bureau}: {key} in database.env.example"
                );
            }
        }
        let service = &manifests[&("Service".to_owned(), bureau.to_owned())];
        for port in service["spec"]["ports"].as_vec().expect("service ports") {
            let target = port["targetPort"].as_str().expect("a named target port");
            assert!(
                ports.contains_key(target),
                "{bureau} Service targets {target}"
            );
        }
        platform_ports.insert(bureau, ports["platform"]);
    }
    for (bureau, other) in [
        ("transfer-out", "transfer-in"),
        ("transfer-in", "transfer-out"),
    ] {
        let deployment = &manifests[&("Deployment".to_owned(), bureau.to_owned())];
        let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
        let peer = flag_value(&args, "--peer").expect("--peer");
        assert_eq!(
            host_of(&peer),
            other,
            "{bureau}'s peer is the {other} Service"
        );
        assert_eq!(
            port_of(&peer),
            platform_ports[other],
            "{bureau}'s peer port"
        );
    }
}

#[test]
fn the_dockerfile_copies_what_exists_and_the_binaries_the_workspace_builds() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let mut copies = 0;
    for line in dockerfile.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            assert!(
                root().join(source).exists(),
                "the Dockerfile copies {source}"
            );
            copies += 1;
        }
    }
    assert!(copies >= 5, "sources copied: {copies}");
    for binary in ["transfer-out", "transfer-in", "yibao"] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "the image carries {binary}"
        );
        let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
        assert!(
            yibao_harness::locate::binary_path(&bin_dir, binary).is_file(),
            "the workspace builds a binary named {binary}"
        );
    }
}
