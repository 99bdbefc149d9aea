//! Crawl budgets per run: pages queued per host and in all, so that a crawl run ends on any
//! site (endless listings, calendars, session ids in URLs, link farms). Counted by each worker
//! for the runs (generations) whose jobs it processes; a URL counts once per run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use url::Url;

use crate::config::Limits;

/// Runs tracked at once (a worker may see jobs of a run that overran while the next started).
const RUNS_KEPT: usize = 4;

#[derive(Default)]
struct RunBudget {
    /// Pages queued in this run, all hosts.
    total: u64,
    /// Pages queued in this run per host (`name:port`).
    per_host: HashMap<String, u64>,
    /// Pages already counted (a page linked from many pages counts once).
    counted: HashSet<String>,
    /// Budgets already reported for a host (one log line each, then quiet).
    reported: HashSet<(&'static str, String)>,
}

/// The budgets of the runs a worker is processing.
#[derive(Default)]
pub(crate) struct Budgets {
    runs: Mutex<BTreeMap<i64, RunBudget>>,
}

fn host_of(u: &Url) -> String {
    format!(
        "{}:{}",
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

impl Budgets {
    /// Counts the page `url` (canonical) as queued in run `generation`, or says which budget
    /// has run out (`Err` is the reason recorded with the skipped row). A page already counted
    /// in this run is admitted again at no cost (queueing it again is a no-op).
    pub(crate) fn admit(&self, generation: i64, url: &Url, limits: &Limits) -> Result<(), String> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if !runs.contains_key(&generation) {
            while runs.len() >= RUNS_KEPT {
                runs.pop_first();
            }
        }
        let run = runs.entry(generation).or_default();
        if run.counted.contains(url.as_str()) {
            return Ok(());
        }
        let host = host_of(url);
        let on_host = run.per_host.get(&host).copied().unwrap_or(0);
        let (budget, limit, scope, reason) = if run.total >= limits.max_pages_per_run {
            let limit = limits.max_pages_per_run;
            (
                "max_pages_per_run",
                limit,
                String::new(),
                format!("crawl budget max_pages_per_run ({limit}) reached: not queued in this run"),
            )
        } else if on_host >= limits.max_pages_per_host {
            let limit = limits.max_pages_per_host;
            (
                "max_pages_per_host",
                limit,
                host.clone(),
                format!(
                    "crawl budget max_pages_per_host ({limit}) reached for {host}: \
                     not queued in this run"
                ),
            )
        } else {
            run.total += 1;
            *run.per_host.entry(host).or_default() += 1;
            run.counted.insert(url.as_str().to_owned());
            return Ok(());
        };
        if run.reported.insert((budget, scope)) {
            tracing::warn!(
                budget,
                limit,
                host = %host,
                url = %url,
                generation,
                "crawl budget reached: this and further pages are not queued in this run"
            );
        } else {
            tracing::debug!(budget, limit, url = %url, "crawl budget reached: not queued");
        }
        Err(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_host_and_per_run_budgets_count_each_page_once() {
        let limits = Limits {
            max_pages_per_host: 2,
            max_pages_per_run: 3,
            ..Limits::default()
        };
        let b = Budgets::default();
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(b.admit(1, &u("http://a.test/1"), &limits).is_ok());
        assert!(b.admit(1, &u("http://a.test/2"), &limits).is_ok());
        // Counted once: linked again, admitted again, at no cost.
        assert!(b.admit(1, &u("http://a.test/2"), &limits).is_ok());
        let e = b.admit(1, &u("http://a.test/3"), &limits).unwrap_err();
        assert!(
            e.contains("max_pages_per_host (2)") && e.contains("a.test:80"),
            "{e}"
        );
        // Another host (or port) has its own budget, until the run's runs out.
        assert!(b.admit(1, &u("http://a.test:8080/1"), &limits).is_ok());
        let e = b.admit(1, &u("http://b.test/1"), &limits).unwrap_err();
        assert!(e.contains("max_pages_per_run (3)"), "{e}");
        // Another run starts afresh.
        assert!(b.admit(2, &u("http://a.test/3"), &limits).is_ok());
        // Old runs are forgotten beyond the few kept.
        for g in 3..10 {
            assert!(b.admit(g, &u("http://a.test/1"), &limits).is_ok());
        }
        assert!(b.runs.lock().unwrap().len() <= RUNS_KEPT);
    }
}
