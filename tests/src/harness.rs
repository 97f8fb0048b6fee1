//! The end-to-end binary's test harness (`harness = false`, [`libtest_mimic`]): each test
//! registered with [`crate::backend_tests!`], [`crate::store_backend_tests!`] or
//! [`crate::e2e_tests!`] is one trial, named as libtest named it (`photos::refusals_are_clear::mysql`),
//! run on a Tokio runtime of its own (multi-thread, 2 workers). Filters, `--exact`, `--list`,
//! `--ignored`, `--include-ignored`, `--skip` and `--test-threads` work as with libtest.
//!
//! PostgreSQL and MariaDB are looked for once, before any test runs (3 s each at most): at
//! `AISTORY_TEST_POSTGRES_URL` / `AISTORY_TEST_MYSQL_URL`, else at the standard local URLs. A
//! backend that cannot be reached, or an S3 store that is not configured, has its tests
//! reported as ignored, so the summary counts them; with `CI=true` (or `CI=1`) they fail.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{Backend, Store, in_ci};

/// What a registered test returns: its body, to be run to the end.
pub type TestFuture = Pin<Box<dyn Future<Output = ()>>>;

/// One registered test: where and under which name, what it needs, how to start it.
pub struct E2eTest {
    /// `module_path!()` where it was registered (`e2e::photos`): the first part is dropped.
    pub module: &'static str,
    /// The name within the module (`refusals_are_clear::sqlite`).
    pub name: &'static str,
    /// The database it needs (`None`: none, or SQLite only).
    pub backend: Option<Backend>,
    /// The object store it needs.
    pub store: Option<Store>,
    /// Whether it needs the streaming replica ([`crate::replica`]).
    pub replica: bool,
    pub run: fn() -> TestFuture,
}

inventory::collect!(E2eTest);

impl E2eTest {
    /// The name filters match: `photos::refusals_are_clear::sqlite`.
    pub fn full_name(&self) -> String {
        match self.module.split_once("::") {
            Some((_, module)) => format!("{module}::{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// Runs every registered test and exits, as libtest's `main` does.
pub fn main() -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        // libtest's variable; libtest-mimic reads only the flag.
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|threads| threads.parse().ok());
    }
    let mut tests: Vec<&'static E2eTest> = inventory::iter::<E2eTest>.into_iter().collect();
    tests.sort_by_key(|test| test.full_name());
    for pair in tests.windows(2) {
        assert!(
            pair[0].full_name() != pair[1].full_name(),
            "the test {} is registered twice",
            pair[0].full_name()
        );
    }

    let ci = in_ci();
    let unreachable = probe_backends(&args, &tests);
    let mut unavailable_counts: BTreeMap<String, usize> = BTreeMap::new();
    let trials = tests
        .into_iter()
        .map(|test| {
            let why = missing(test, &unreachable);
            if let Some(why) = &why
                && !args.is_filtered_out(&trial_named(test.full_name()))
            {
                *unavailable_counts.entry(why.clone()).or_default() += 1;
            }
            let ignored = why.is_some() && !ci;
            let run = test.run;
            Trial::test(test.full_name(), move || match why {
                Some(why) if ci => Err(Failed::from(format!(
                    "CI=true, and every backend and store must be tested: {why}"
                ))),
                Some(why) => Err(Failed::from(format!("cannot run here: {why}"))),
                None => run_on_own_runtime(run),
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    for (why, count) in unavailable_counts.iter().filter(|_| !args.list) {
        let outcome = if ci {
            "fail (CI=true)"
        } else {
            "are reported as ignored"
        };
        eprintln!("note: {count} tests {outcome}: {why}. See docs/testing.md.");
    }
    libtest_mimic::run(&args, trials).exit()
}

/// A trial with only a name, to ask the arguments whether a test is selected at all.
fn trial_named(name: String) -> Trial {
    // Flagged ignored so that `--ignored` does not filter it out on that account.
    Trial::test(name, || Ok(())).with_ignored_flag(true)
}

/// Looks for each backend that a selected test needs, all at once; the ones that cannot be
/// reached, with why.
fn probe_backends(args: &Arguments, tests: &[&E2eTest]) -> BTreeMap<&'static str, String> {
    let needed: Vec<Backend> = [Backend::Postgres, Backend::MySql]
        .into_iter()
        .filter(|backend| {
            tests.iter().any(|test| {
                test.backend == Some(*backend)
                    && !args.is_filtered_out(&trial_named(test.full_name()))
            })
        })
        .collect();
    if needed.is_empty() || args.list && !args.ignored {
        return BTreeMap::new();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("starting a Tokio runtime failed: {error}"));
    let outcomes = runtime.block_on(futures_util::future::join_all(
        needed.iter().map(|backend| backend.probe()),
    ));
    needed
        .into_iter()
        .zip(outcomes)
        .filter_map(|(backend, outcome)| {
            let error = outcome.err()?;
            let variable = backend.variable().unwrap_or_default();
            Some((
                backend.name(),
                format!("{error} (start it, or set {variable} to one that runs)"),
            ))
        })
        .collect()
}

/// Why `test` cannot run here, if it cannot.
fn missing(test: &E2eTest, unreachable: &BTreeMap<&'static str, String>) -> Option<String> {
    if let Some(why) = test
        .backend
        .and_then(|backend| unreachable.get(backend.name()))
    {
        return Some(why.clone());
    }
    if test.replica
        && let Some(why) = crate::replica::missing()
    {
        return Some(why);
    }
    match test.store {
        Some(store) if !store.configured() => Some(store.missing()),
        _ => None,
    }
}

/// Runs a test as `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` did: on a
/// runtime of its own, dropped (with whatever the test spawned) when it ends. A panic fails
/// the trial.
fn run_on_own_runtime(run: fn() -> TestFuture) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| Failed::from(format!("starting a Tokio runtime failed: {error}")))?;
    runtime.block_on(run());
    Ok(())
}

/// Fails (naming them) if a file in `dir` still declares a test with `#[test]` or
/// `#[tokio::test]`: with `harness = false` such a test would silently never run.
pub fn refuse_unregistered_tests(dir: &str) {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {dir} failed: {error}"));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        for (number, line) in source.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                found.push(format!("{}:{}", path.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "these tests would never run (this binary has its own harness): register them with \
         e2e_tests!, backend_tests! or store_backend_tests! instead:\n{}",
        found.join("\n")
    );
}
