//! Object stores for tests: memory, a temporary directory, or a bucket of its own on an
//! S3-protocol server (s3s-fs in CI).
//!
//! S3 needs `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (read by the
//! server, as in production) and `AISTORY_TEST_S3_ROOT`: the directory s3s-fs serves, where a
//! bucket is a sub-directory (that is how each test gets a bucket of its own). Without them
//! the S3 tests say they were skipped; with CI=true they fail.

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

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

impl TestStore {
    pub fn create(store: Store) -> Option<TestStore> {
        let name = format!(
            "aistory-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        match store {
            Store::Memory => Some(TestStore {
                url: "memory://".to_owned(),
                dir: None,
            }),
            Store::File => {
                let dir = std::env::temp_dir().join(&name);
                Some(TestStore {
                    url: format!("file://{}", dir.display()),
                    dir: Some(dir),
                })
            }
            Store::S3 => {
                let configured = [
                    "AWS_ENDPOINT_URL",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ]
                .iter()
                .all(|name| std::env::var(name).is_ok());
                let root = std::env::var("AISTORY_TEST_S3_ROOT").ok();
                let (true, Some(root)) = (configured, root) else {
                    assert!(
                        !in_ci(),
                        "CI=true but the S3 test settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, \
                         AWS_SECRET_ACCESS_KEY, AISTORY_TEST_S3_ROOT) are not all set"
                    );
                    eprintln!(
                        "skipped: S3 store (AWS_ENDPOINT_URL / AISTORY_TEST_S3_ROOT not set)"
                    );
                    return None;
                };
                let dir = PathBuf::from(root).join(&name);
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|error| panic!("creating bucket {}: {error}", dir.display()));
                Some(TestStore {
                    url: format!("s3://{name}"),
                    dir: Some(dir),
                })
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
