//! Object stores for tests: memory, a temporary directory, or a bucket of its own on an
//! S3-protocol server (s3s-fs in CI).
//!
//! S3 needs `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (read by the
//! server, as in production) and `AISTORY_TEST_S3_ROOT`: the directory s3s-fs serves, where a
//! bucket is a sub-directory (that is how each test gets a bucket of its own). Without them
//! the e2e harness reports the S3 tests as ignored; with CI=true they fail.

use std::path::PathBuf;

/// Which object store a test's server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    File,
    S3,
}

/// A store for one test, removed when dropped.
#[derive(Debug)]
pub struct TestStore {
    pub url: String,
    dir: Option<PathBuf>,
}

/// The variables an S3 store needs (see the module's documentation).
const S3_VARIABLES: [&str; 4] = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AISTORY_TEST_S3_ROOT",
];

impl Store {
    /// Whether tests can use this store here: memory and files always, S3 when its variables
    /// are set.
    pub fn configured(self) -> bool {
        match self {
            Store::Memory | Store::File => true,
            Store::S3 => S3_VARIABLES
                .iter()
                .all(|name| std::env::var(name).is_ok_and(|value| !value.is_empty())),
        }
    }

    /// Why [`Self::configured`] is false (for messages).
    pub fn missing(self) -> String {
        format!("the {self:?} store needs {} set", S3_VARIABLES.join(", "))
    }

    /// For a test that tries several stores in turn: whether to try this one. `false` (after
    /// saying so) when it is not configured; under CI=true, where every store must be tested,
    /// that panics instead.
    pub fn available(self) -> bool {
        if self.configured() {
            return true;
        }
        assert!(!crate::in_ci(), "CI=true but {}", self.missing());
        eprintln!("not tried here: {}", self.missing());
        false
    }
}

impl TestStore {
    /// A new, empty store of kind `store`. Panics when it is not configured (the e2e harness
    /// reports tests that need it as ignored before they run).
    pub fn create(store: Store) -> TestStore {
        let name = format!(
            "aistory-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        match store {
            Store::Memory => TestStore {
                url: "memory://".to_owned(),
                dir: None,
            },
            Store::File => {
                let dir = std::env::temp_dir().join(&name);
                TestStore {
                    url: format!("file://{}", dir.display()),
                    dir: Some(dir),
                }
            }
            Store::S3 => {
                assert!(store.configured(), "{}", store.missing());
                let root = std::env::var("AISTORY_TEST_S3_ROOT").unwrap_or_default();
                let dir = PathBuf::from(root).join(&name);
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|error| panic!("creating bucket {}: {error}", dir.display()));
                TestStore {
                    url: format!("s3://{name}"),
                    dir: Some(dir),
                }
            }
        }
    }

    /// Files left in the store (local directory or S3 bucket directory), for orphan checks.
    pub fn files(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(next) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&next) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
