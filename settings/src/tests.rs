use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn parse(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

fn invalid_var(result: Result<Settings, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { var, .. }) => var,
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

#[test]
fn defaults_are_development_on_a_sqlite_file() {
    let settings = parse(&[]).unwrap();
    assert_eq!(settings.environment, Environment::Development);
    assert_eq!(settings.database.url, "sqlite://aistory.db?mode=rwc");
    assert_eq!(settings.database.pool_size, 5);
    assert_eq!(settings.database.max_overflow, 10);
    assert!(!settings.database.echo);
    assert_eq!(settings.host, "127.0.0.1");
    assert_eq!(settings.port, 8000);
    assert_eq!(settings.log_format, LogFormat::Pretty);
}

#[test]
fn testing_defaults_to_sqlite_in_memory() {
    let settings = parse(&[("AISTORY_ENVIRONMENT", "testing")]).unwrap();
    assert_eq!(settings.database.url, "sqlite::memory:");
}

#[test]
fn production_without_url_names_the_variable() {
    let error = parse(&[("AISTORY_ENVIRONMENT", "production")]).unwrap_err();
    assert!(
        error.to_string().contains("AISTORY_DATABASE_URL_PROD"),
        "{error}"
    );
}

const PROD_KEY: &str = "0123456789abcdef0123456789abcdef-prod";

#[test]
fn production_logs_json_by_default() {
    let settings = parse(&[
        ("AISTORY_ENVIRONMENT", "production"),
        ("AISTORY_DATABASE_URL", "postgres://u:p@db/app"),
        ("AISTORY_SECRET_KEY", PROD_KEY),
    ])
    .unwrap();
    assert_eq!(settings.log_format, LogFormat::Json);
}

#[test]
fn environment_specific_url_wins_over_generic() {
    let generic = ("AISTORY_DATABASE_URL", "postgres://h/generic");
    for (env, var) in [
        ("development", "AISTORY_DATABASE_URL_DEV"),
        ("testing", "AISTORY_DATABASE_URL_TEST"),
        ("production", "AISTORY_DATABASE_URL_PROD"),
    ] {
        let settings = parse(&[
            ("AISTORY_ENVIRONMENT", env),
            generic,
            (var, "postgres://h/specific"),
            ("AISTORY_SECRET_KEY", PROD_KEY),
        ])
        .unwrap();
        assert_eq!(settings.database.url, "postgres://h/specific", "{env}");
        assert_eq!(settings.database.url_source, var);
        // Another environment's URL is ignored.
        let other = parse(&[
            ("AISTORY_ENVIRONMENT", env),
            generic,
            ("AISTORY_SECRET_KEY", PROD_KEY),
        ])
        .unwrap();
        assert_eq!(other.database.url, "postgres://h/generic");
    }
}

#[test]
fn sqlalchemy_style_urls_are_accepted() {
    let settings = parse(&[(
        "AISTORY_DATABASE_URL",
        "postgresql+asyncpg://user:password@localhost:5432/aistory",
    )])
    .unwrap();
    assert_eq!(
        settings.database.url,
        "postgres://user:password@localhost:5432/aistory"
    );
    let maria = parse(&[("AISTORY_DATABASE_URL", "mariadb://root@localhost/app")]).unwrap();
    assert_eq!(maria.database.url, "mysql://root@localhost/app");
}

#[test]
fn malformed_values_name_their_variable() {
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_POOL_SIZE", "abc")])),
        "AISTORY_DB_POOL_SIZE"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_POOL_SIZE", "0")])),
        "AISTORY_DB_POOL_SIZE"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_MAX_OVERFLOW", "-1")])),
        "AISTORY_DB_MAX_OVERFLOW"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_READ_POOL_SIZE", "1001")])),
        "AISTORY_DB_READ_POOL_SIZE"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_READ_POOL_SIZE", "some")])),
        "AISTORY_DB_READ_POOL_SIZE"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_ENVIRONMENT", "staging")])),
        "AISTORY_ENVIRONMENT"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_ECHO", "maybe")])),
        "AISTORY_DB_ECHO"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_PORT", "70000")])),
        "AISTORY_PORT"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_LOG_FORMAT", "xml")])),
        "AISTORY_LOG_FORMAT"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DATABASE_URL", "oracle://x")])),
        "AISTORY_DATABASE_URL"
    );
    let message = parse(&[("AISTORY_ENVIRONMENT", "staging")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("development, testing, production"),
        "{message}"
    );
}

#[test]
fn a_bad_url_error_does_not_show_the_password() {
    let message = parse(&[("AISTORY_DATABASE_URL", "oracle://user:hunter2@db/x")])
        .unwrap_err()
        .to_string();
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn echo_and_pool_settings_are_read() {
    let settings = parse(&[
        ("AISTORY_DB_ECHO", "True"),
        ("AISTORY_DB_POOL_SIZE", "3"),
        ("AISTORY_DB_MAX_OVERFLOW", "4"),
        ("AISTORY_DB_READ_POOL_SIZE", "0"),
        ("AISTORY_DATABASE_URL", "postgres://h/db"),
    ])
    .unwrap();
    assert!(settings.database.echo);
    assert_eq!(settings.database.read_pool_size, 0);
    assert_eq!(
        parse(&[]).unwrap().database.read_pool_size,
        crate::database::DEFAULT_READ_POOL_SIZE
    );
    let options = settings.database.connect_options();
    assert_eq!(options.get_min_connections(), Some(3));
    assert_eq!(options.get_max_connections(), Some(7));
    assert_eq!(
        options.get_idle_timeout(),
        Some(Some(Duration::from_secs(300)))
    );
    assert_eq!(
        options.get_test_before_acquire_if_idle_for(),
        Some(Duration::from_secs(5)),
        "pre-ping connections idle for 5 s or more"
    );
    assert!(options.get_sqlx_logging());
    assert!(options.get_connect_timeout().is_some());
    assert!(options.get_acquire_timeout().is_some());
}

#[test]
fn in_memory_sqlite_keeps_its_single_connection() {
    let options = DatabaseSettings::for_url("sqlite::memory:").connect_options();
    assert_eq!(options.get_max_connections(), Some(1));
    assert_eq!(options.get_idle_timeout(), Some(None));
}

#[test]
fn redaction_hides_passwords_only() {
    assert_eq!(
        redact_url("postgres://user:secret@host:5432/db"),
        "postgres://user:***@host:5432/db"
    );
    assert_eq!(
        redact_url("postgres://user@host/db"),
        "postgres://user@host/db"
    );
    assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    let debug = format!("{:?}", DatabaseSettings::for_url("mysql://root:pw@h/db"));
    assert!(!debug.contains("pw@"), "{debug}");
}

#[test]
fn production_needs_a_long_secret_key() {
    let base = [
        ("AISTORY_ENVIRONMENT", "production"),
        ("AISTORY_DATABASE_URL", "postgres://h/db"),
    ];
    match parse(&base) {
        Err(ConfigError::Missing { var, .. }) => assert_eq!(var, "AISTORY_SECRET_KEY"),
        other => panic!("expected a missing key, got {other:?}"),
    }
    let short = [base[0], base[1], ("AISTORY_SECRET_KEY", "too-short")];
    let error = parse(&short).unwrap_err();
    assert_eq!(invalid_var(Err(error.clone())), "AISTORY_SECRET_KEY");
    assert!(
        !error.to_string().contains("too-short"),
        "the key leaked: {error}"
    );
    let good = [base[0], base[1], ("AISTORY_SECRET_KEY", PROD_KEY)];
    let settings = parse(&good).unwrap();
    assert!(!settings.auth.insecure_key);
    assert!(
        !format!("{settings:?}").contains(PROD_KEY),
        "Debug shows the key"
    );
}

#[test]
fn without_a_key_each_process_gets_a_random_one_on_loopback_only() {
    let settings = parse(&[]).unwrap();
    assert!(settings.auth.generated_key && !settings.auth.insecure_key);
    assert!(settings.auth.secret_key.len() >= MIN_SECRET_BYTES);
    let again = parse(&[]).unwrap();
    assert_ne!(
        settings.auth.secret_key, again.auth.secret_key,
        "never shared"
    );
    for host in ["127.0.0.1", "::1", "localhost", "127.0.0.2"] {
        assert!(parse(&[("AISTORY_HOST", host)]).is_ok(), "{host}");
    }
    for host in ["0.0.0.0", "192.168.1.5", "::"] {
        match parse(&[("AISTORY_HOST", host)]) {
            Err(ConfigError::Missing { var, .. }) => assert_eq!(var, "AISTORY_SECRET_KEY"),
            other => panic!("{host}: expected a missing key, got {other:?}"),
        }
    }
    let keyed = parse(&[
        ("AISTORY_HOST", "0.0.0.0"),
        (
            "AISTORY_SECRET_KEY",
            "a-chosen-secret-of-at-least-32-bytes!!",
        ),
    ])
    .unwrap();
    assert!(!keyed.auth.generated_key);
    assert_eq!(settings.auth.access_token_ttl, Duration::from_secs(900));
    assert_eq!(
        invalid_var(parse(&[("AISTORY_ACCESS_TOKEN_TTL_SECS", "0")])),
        "AISTORY_ACCESS_TOKEN_TTL_SECS"
    );
}

#[test]
fn storage_defaults_and_validation() {
    let settings = parse(&[]).unwrap();
    assert_eq!(settings.storage.url, "file://./data/objects");
    assert_eq!(settings.storage.max_upload_bytes, 20_971_520);
    for good in ["memory://", "s3://bucket", "file:///var/lib/aistory"] {
        parse(&[("AISTORY_STORAGE_URL", good)]).unwrap();
    }
    for bad in ["ftp://x", "s3://", "s3://bucket/with/path", "file://"] {
        assert_eq!(
            invalid_var(parse(&[("AISTORY_STORAGE_URL", bad)])),
            "AISTORY_STORAGE_URL"
        );
    }
    assert_eq!(
        invalid_var(parse(&[("AISTORY_MAX_UPLOAD_BYTES", "lots")])),
        "AISTORY_MAX_UPLOAD_BYTES"
    );
}

#[test]
fn downloads_redirect_by_default_only_on_s3() {
    let local = parse(&[]).unwrap();
    assert_eq!(local.storage.downloads, DownloadMode::Proxy);
    assert_eq!(local.storage.download_url_ttl, Duration::from_secs(300));
    let s3 = parse(&[("AISTORY_STORAGE_URL", "s3://bucket")]).unwrap();
    assert_eq!(s3.storage.downloads, DownloadMode::Redirect);
    let proxied = parse(&[
        ("AISTORY_STORAGE_URL", "s3://bucket"),
        ("AISTORY_DOWNLOADS", "proxy"),
        ("AISTORY_DOWNLOAD_URL_TTL_SECS", "60"),
    ])
    .unwrap();
    assert_eq!(proxied.storage.downloads, DownloadMode::Proxy);
    assert_eq!(proxied.storage.download_url_ttl, Duration::from_secs(60));
    for bad in [
        vec![("AISTORY_DOWNLOADS", "redirect")],
        vec![
            ("AISTORY_STORAGE_URL", "s3://bucket"),
            ("AISTORY_DOWNLOADS", "cdn"),
        ],
    ] {
        assert_eq!(invalid_var(parse(&bad)), "AISTORY_DOWNLOADS");
    }
    for bad in ["0", "604801", "soon"] {
        assert_eq!(
            invalid_var(parse(&[("AISTORY_DOWNLOAD_URL_TTL_SECS", bad)])),
            "AISTORY_DOWNLOAD_URL_TTL_SECS"
        );
    }
}

#[test]
fn workers_and_story_provider_default_to_one_builtin_worker() {
    let settings = parse(&[]).unwrap();
    assert_eq!(settings.workers.count, 1);
    assert_eq!(settings.workers.lease, Duration::from_secs(60));
    assert_eq!(settings.story_provider, StoryProviderSettings::Builtin);
    let settings = parse(&[("AISTORY_WORKERS", "0"), ("AISTORY_WORKER_LEASE_SECS", "5")]).unwrap();
    assert_eq!(settings.workers.count, 0);
    assert_eq!(settings.workers.lease, Duration::from_secs(5));
}

#[test]
fn the_openai_provider_needs_its_endpoint_and_model() {
    let missing = parse(&[("AISTORY_STORY_PROVIDER", "openai")]).unwrap_err();
    assert!(
        matches!(&missing, ConfigError::Missing { var, .. } if var == "AISTORY_AI_BASE_URL"),
        "{missing}"
    );
    let missing = parse(&[
        ("AISTORY_STORY_PROVIDER", "openai"),
        ("AISTORY_AI_BASE_URL", "http://127.0.0.1:9/v1/"),
    ])
    .unwrap_err();
    assert!(
        matches!(&missing, ConfigError::Missing { var, .. } if var == "AISTORY_AI_MODEL"),
        "{missing}"
    );
    let settings = parse(&[
        ("AISTORY_STORY_PROVIDER", "OpenAI"),
        ("AISTORY_AI_BASE_URL", "http://127.0.0.1:9/v1/"),
        ("AISTORY_AI_MODEL", "gpt-4o-mini"),
        ("AISTORY_AI_API_KEY", "sk-secret"),
        ("AISTORY_AI_TIMEOUT_SECS", "7"),
    ])
    .unwrap();
    let StoryProviderSettings::OpenAi(openai) = settings.story_provider else {
        panic!("expected the openai provider");
    };
    assert_eq!(openai.base_url, "http://127.0.0.1:9/v1");
    assert_eq!(openai.api_key.as_deref(), Some("sk-secret"));
    assert_eq!(openai.timeout, Duration::from_secs(7));
    assert!(!format!("{openai:?}").contains("sk-secret"));
}

#[test]
fn malformed_worker_and_provider_values_name_their_variable() {
    for (var, value) in [
        ("AISTORY_WORKERS", "many"),
        ("AISTORY_WORKERS", "65"),
        ("AISTORY_WORKER_LEASE_SECS", "0"),
        ("AISTORY_WORKER_POLL_MS", "1"),
        ("AISTORY_STORY_PROVIDER", "gpt"),
    ] {
        assert_eq!(invalid_var(parse(&[(var, value)])), var);
    }
    assert_eq!(
        invalid_var(parse(&[
            ("AISTORY_STORY_PROVIDER", "openai"),
            ("AISTORY_AI_BASE_URL", "ftp://x"),
            ("AISTORY_AI_MODEL", "m"),
        ])),
        "AISTORY_AI_BASE_URL"
    );
}

#[test]
fn cors_origins_are_normalised_and_checked() {
    assert!(parse(&[]).unwrap().cors_origins.is_empty());
    let settings = parse(&[(
        "AISTORY_CORS_ORIGINS",
        " https://App.example.com:443 , http://localhost:5173/ ",
    )])
    .unwrap();
    assert_eq!(
        settings.cors_origins,
        ["https://app.example.com", "http://localhost:5173"]
    );
    assert_eq!(
        parse(&[("AISTORY_CORS_ORIGINS", "*")])
            .unwrap()
            .cors_origins,
        ["*"]
    );
    for bad in [
        "https://app.example.com/path",
        "ftp://example.com",
        "example.com",
        "https://user@example.com",
        "*,https://a.example",
    ] {
        assert_eq!(
            invalid_var(parse(&[("AISTORY_CORS_ORIGINS", bad)])),
            "AISTORY_CORS_ORIGINS",
            "{bad}"
        );
    }
}

#[test]
fn metrics_address_and_slow_statements() {
    let settings = parse(&[]).unwrap();
    assert!(settings.metrics_addr.is_none());
    assert_eq!(
        settings.database.slow_statement,
        Some(Duration::from_millis(200))
    );
    let settings = parse(&[
        ("AISTORY_METRICS_ADDR", "127.0.0.1:9100"),
        ("AISTORY_DB_SLOW_MS", "0"),
    ])
    .unwrap();
    assert_eq!(settings.metrics_addr.as_deref(), Some("127.0.0.1:9100"));
    assert_eq!(settings.database.slow_statement, None);
    assert_eq!(
        invalid_var(parse(&[("AISTORY_METRICS_ADDR", "localhost")])),
        "AISTORY_METRICS_ADDR"
    );
    assert_eq!(
        invalid_var(parse(&[("AISTORY_DB_SLOW_MS", "soon")])),
        "AISTORY_DB_SLOW_MS"
    );
}

#[test]
fn trusted_proxies_and_throttling_are_read() {
    let settings = parse(&[]).unwrap();
    assert!(settings.trusted_proxies.is_empty());
    assert_eq!(settings.auth.throttle, crate::ThrottleSettings::default());
    let settings = parse(&[
        (
            "AISTORY_TRUSTED_PROXIES",
            " 10.0.0.0/8, 192.0.2.7 ,fd00::/8,10.1.2.3/16",
        ),
        ("AISTORY_LOGIN_MAX_FAILURES", "3"),
        ("AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS", "40"),
        ("AISTORY_LOGIN_FREE_FAILURES_PER_ACCOUNT", "12"),
        ("AISTORY_LOGIN_MAX_DELAY_SECS", "30"),
        ("AISTORY_LOGIN_WINDOW_SECS", "600"),
        ("AISTORY_REGISTRATIONS_PER_HOUR", "5"),
    ])
    .unwrap();
    let proxies: Vec<String> = settings
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    // A single address is a /32 (or /128); host bits of a network are cleared.
    assert_eq!(
        proxies,
        ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "10.1.0.0/16"]
    );
    let throttle = &settings.auth.throttle;
    assert_eq!(throttle.max_failures_per_account_address, 3);
    assert_eq!(throttle.max_failures_per_address, 40);
    assert_eq!(throttle.free_failures_per_account, 12);
    assert_eq!(throttle.max_delay, Duration::from_secs(30));
    assert_eq!(throttle.window, Duration::from_secs(600));
    assert_eq!(throttle.registrations_per_hour, 5);
    assert_eq!(
        settings.forwarded_header,
        crate::ForwardedHeader::XForwardedFor
    );
    assert_eq!(
        parse(&[("AISTORY_FORWARDED_HEADER", "Forwarded")])
            .unwrap()
            .forwarded_header,
        crate::ForwardedHeader::Forwarded
    );
    for (name, bad) in [
        ("AISTORY_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("AISTORY_TRUSTED_PROXIES", "proxy.example.com"),
        ("AISTORY_LOGIN_MAX_FAILURES", "0"),
        ("AISTORY_LOGIN_MAX_DELAY_SECS", "3601"),
        ("AISTORY_REGISTRATIONS_PER_HOUR", "many"),
        ("AISTORY_FORWARDED_HEADER", "x-real-ip"),
    ] {
        assert_eq!(invalid_var(parse(&[(name, bad)])), name, "{name}={bad}");
    }
}

#[test]
fn a_read_replica_is_postgres_beside_postgres() {
    let settings = parse(&[
        ("AISTORY_DATABASE_URL", "postgres://h/db"),
        (
            "AISTORY_DATABASE_READ_URL",
            "postgresql+asyncpg://u:hunter2@replica:5433/db",
        ),
        ("AISTORY_DB_REPLICA_MAX_WAIT_MS", "250"),
    ])
    .unwrap();
    assert_eq!(
        settings.database.read_url.as_deref(),
        Some("postgres://u:hunter2@replica:5433/db")
    );
    assert_eq!(
        settings.database.replica_max_wait,
        Duration::from_millis(250)
    );
    assert!(!format!("{:?}", settings.database).contains("hunter2"));

    let defaults = parse(&[("AISTORY_DATABASE_URL", "postgres://h/db")]).unwrap();
    assert_eq!(defaults.database.read_url, None);
    assert_eq!(
        defaults.database.replica_max_wait,
        Duration::from_millis(100)
    );

    // Beside SQLite or MySQL, or not PostgreSQL itself: refused, naming the variable.
    for vars in [
        &[("AISTORY_DATABASE_READ_URL", "postgres://replica/db")][..],
        &[
            ("AISTORY_DATABASE_URL", "mysql://h/db"),
            ("AISTORY_DATABASE_READ_URL", "postgres://replica/db"),
        ],
        &[
            ("AISTORY_DATABASE_URL", "postgres://h/db"),
            ("AISTORY_DATABASE_READ_URL", "mysql://replica/db"),
        ],
        &[
            ("AISTORY_DATABASE_URL", "postgres://h/db"),
            ("AISTORY_DB_REPLICA_MAX_WAIT_MS", "10001"),
        ],
    ] {
        let var = invalid_var(parse(vars));
        assert!(var.starts_with("AISTORY_D"), "{var}");
    }
    let message = parse(&[
        ("AISTORY_DATABASE_URL", "mysql://h/db"),
        (
            "AISTORY_DATABASE_READ_URL",
            "postgres://u:hunter2@replica/db",
        ),
    ])
    .unwrap_err()
    .to_string();
    assert!(message.contains("AISTORY_DATABASE_READ_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn http_workers_default_to_the_cores_and_are_bounded() {
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults.http_workers, None);
    let one = parse(&[("AISTORY_HTTP_WORKERS", "1")]).unwrap();
    assert_eq!(one.http_workers, Some(1));
    for value in ["0", "257", "two", "-1"] {
        assert_eq!(
            invalid_var(parse(&[("AISTORY_HTTP_WORKERS", value)])),
            "AISTORY_HTTP_WORKERS",
            "{value}"
        );
    }
}
