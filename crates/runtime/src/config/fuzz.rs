//! Fuzzing the settings by property (issue 10, item 6): a settings file of arbitrary text, a
//! full settings file with characters and whole lines changed, and arbitrary values of the
//! environment variables, layered as a binary layers them (`ServiceConfig::merged`, without the
//! file system). Loading may not panic; it answers with settings that validate or an error
//! naming the line (TOML), the setting or the variable. Named `fuzz_…`; `PROPTEST_CASES` raises
//! the default 256 cases.

use std::path::Path;

use proptest::prelude::*;

use super::{ConfigError, ServiceArgs, ServiceConfig, parse_file_layer};
use crate::directory::BureauRole;
use crate::fuzz::{any_text, edited, edits, located};

/// A settings file that sets every key.
const FULL_SETTINGS: &str = r#"
listen = "127.0.0.1:50051"
platform_listen = "127.0.0.1:50061"
platform_port_file = "platform.port"
tls_ca = "ca.pem"
tls_cert = "out.pem"
tls_key = "out.key"
plaintext = false
data_dir = "data/transfer-out"
directory = "deploy/regions.toml"
peer_endpoint = "https://127.0.0.1:50062"
admin_enabled = true
admin_token = "0123456789abcdef0123"
test_clock = true
calendar_dir = "calendars"
log_format = "json"
port_file = "main.port"
shutdown_timeout_ms = 5000

[dispatcher]
batch_limit = 256
batches_in_flight = 4
attempt_timeout_ms = 2000
backoff_initial_ms = 50
backoff_max_ms = 10000
idle_poll_ms = 200

[bank]
failure_every = 0
"#;

/// The environment variables the settings read, besides `YIBAO_CONFIG`.
const VARIABLES: &[&str] = &[
    "YIBAO_LISTEN",
    "YIBAO_PLATFORM_LISTEN",
    "YIBAO_PLATFORM_PORT_FILE",
    "YIBAO_TLS_CA",
    "YIBAO_TLS_CERT",
    "YIBAO_TLS_KEY",
    "YIBAO_PLAINTEXT",
    "YIBAO_DATA_DIR",
    "YIBAO_DIRECTORY",
    "YIBAO_PEER",
    "YIBAO_ADMIN",
    "YIBAO_ADMIN_TOKEN",
    "YIBAO_TEST_CLOCK",
    "YIBAO_CALENDAR_DIR",
    "YIBAO_LOG_FORMAT",
    "YIBAO_PORT_FILE",
];

/// Loads settings from `file` (when given) and `environment`, as a binary would, and checks the
/// answer: accepted settings validate; an error names the line, the setting or the variable.
fn check_settings(file: Option<&str>, environment: &[(&str, String)]) -> Result<(), TestCaseError> {
    let path = Path::new("service.toml");
    let variable = |name: &str| {
        environment
            .iter()
            .find(|(variable, value)| *variable == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    };
    for role in [BureauRole::TransferOut, BureauRole::TransferIn] {
        let loaded = file
            .map(|text| parse_file_layer(path, text))
            .transpose()
            .and_then(|layer| {
                ServiceConfig::merged(role, layer, &ServiceArgs::default(), variable)
            });
        match loaded {
            Ok(config) => prop_assert!(config.validate().is_ok()),
            Err(ConfigError::ParseFile { message, .. }) => located(&message)?,
            Err(ConfigError::Invalid { setting, .. }) => prop_assert!(!setting.is_empty()),
            Err(ConfigError::Environment { variable, .. }) => {
                prop_assert!(VARIABLES.contains(&variable));
            }
            Err(error) => prop_assert!(false, "unexpected {}", error),
        }
    }
    Ok(())
}

/// A value for an environment variable: a valid-looking one or anything.
fn variable_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "true",
            "FALSE",
            "on",
            "2",
            "json",
            "Text",
            "127.0.0.1:0",
            "[::1]:50051",
            "https://127.0.0.1:50062",
            "http://h:1/p",
            "file:",
            "file:x",
            "0123456789abcdef",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn fuzz_settings_any_text(text in any_text()) {
        check_settings(Some(&text), &[("YIBAO_PLAINTEXT", "true".to_owned())])?;
    }

    #[test]
    fn fuzz_settings_near_a_full_file(edits in edits()) {
        check_settings(Some(&edited(FULL_SETTINGS, &edits)), &[])?;
    }

    #[test]
    fn fuzz_settings_any_environment(
        values in proptest::collection::vec(
            (proptest::sample::select(VARIABLES), variable_value()),
            0..6,
        ),
    ) {
        let environment: Vec<(&str, String)> = values.into_iter().collect();
        check_settings(None, &environment)?;
    }
}
