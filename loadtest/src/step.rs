//! The step search for the largest load a target sustains: a step passes when it finished within
//! its deadline, its loss is below the limit (0.5%) and the server's CPU is not saturated; a step
//! that timed out is a failure like any other, so the search bisects below it. The load doubles until a step fails,
//! then bisects between the last pass and the first failure down to a resolution of about 10%.
//! A plain state machine: it proposes visit counts and is told the outcomes.

/// What one step showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Loss in percent.
    pub loss_pct: f64,
    /// Server CPU in percent of one core.
    pub server_cpu_pct: f64,
    /// Every participant joined and received media.
    pub all_joined: bool,
    /// The step did not finish within its deadline (its other numbers mean nothing).
    pub timed_out: bool,
}

/// Loss at or above this fails a step (percent).
pub const LOSS_LIMIT_PCT: f64 = 0.5;
/// Server CPU at or above this counts as saturated (percent of the one pinned core).
pub const CPU_SATURATED_PCT: f64 = 97.0;

/// Whether a step passes.
pub fn passes(outcome: &StepOutcome) -> bool {
    !outcome.timed_out
        && outcome.all_joined
        && outcome.loss_pct < LOSS_LIMIT_PCT
        && outcome.server_cpu_pct < CPU_SATURATED_PCT
}

/// The search.
#[derive(Debug, Clone)]
pub struct StepSearch {
    next: Option<u32>,
    best_pass: Option<u32>,
    first_fail: Option<u32>,
    max: u32,
}

impl StepSearch {
    /// Starts at `start` visits, never proposes more than `max`.
    pub fn new(start: u32, max: u32) -> StepSearch {
        let start = start.clamp(1, max.max(1));
        StepSearch {
            next: Some(start),
            best_pass: None,
            first_fail: None,
            max: max.max(1),
        }
    }

    /// The next visit count to try, `None` when done.
    pub fn next(&self) -> Option<u32> {
        self.next
    }

    /// The largest passing load so far.
    pub fn best(&self) -> Option<u32> {
        self.best_pass
    }

    /// Records the outcome of `visits` and chooses the next step.
    pub fn record(&mut self, visits: u32, passed: bool) {
        if passed {
            self.best_pass = Some(self.best_pass.map_or(visits, |b| b.max(visits)));
        } else {
            self.first_fail = Some(self.first_fail.map_or(visits, |f| f.min(visits)));
        }
        self.next = match (self.best_pass, self.first_fail) {
            (Some(pass), None) => (pass < self.max).then(|| pass.saturating_mul(2).min(self.max)),
            (None, Some(fail)) => (fail > 1).then_some(fail / 2),
            (Some(pass), Some(fail)) => {
                let resolution = (pass / 10).max(1);
                (fail > pass + resolution).then(|| pass + (fail - pass) / 2)
            }
            (None, None) => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(capacity: u32, start: u32, max: u32) -> (Option<u32>, Vec<u32>) {
        let mut search = StepSearch::new(start, max);
        let mut tried = Vec::new();
        while let Some(v) = search.next() {
            assert!(!tried.contains(&v), "{v} tried twice: {tried:?}");
            tried.push(v);
            search.record(v, v <= capacity);
        }
        (search.best(), tried)
    }

    #[test]
    fn doubles_then_bisects_to_within_ten_percent() {
        let (best, tried) = run(137, 10, 10_000);
        let best = best.expect("a passing load");
        assert!(
            best <= 137 && best * 10 >= 137 * 9,
            "best {best}, tried {tried:?}"
        );
        assert_eq!(&tried[..5], &[10, 20, 40, 80, 160]);
        assert!(tried.len() < 12);
    }

    #[test]
    fn stops_at_the_cap_and_at_one() {
        let (best, tried) = run(1_000, 4, 20);
        assert_eq!(best, Some(20));
        assert_eq!(tried, vec![4, 8, 16, 20]);
        let (best, tried) = run(0, 4, 20);
        assert_eq!(best, None);
        assert_eq!(tried, vec![4, 2, 1]);
    }

    #[test]
    fn a_step_fails_on_loss_cpu_or_missing_joins() {
        let ok = StepOutcome {
            loss_pct: 0.1,
            server_cpu_pct: 60.0,
            all_joined: true,
            timed_out: false,
        };
        assert!(passes(&ok));
        assert!(!passes(&StepOutcome {
            loss_pct: 0.5,
            ..ok
        }));
        assert!(!passes(&StepOutcome {
            server_cpu_pct: 99.0,
            ..ok
        }));
        assert!(!passes(&StepOutcome {
            all_joined: false,
            ..ok
        }));
        assert!(!passes(&StepOutcome {
            timed_out: true,
            ..ok
        }));
    }

    /// The unbounded bench that hung: every step up to 640 visits passes, every step from 1000
    /// on never finishes. Timed-out steps (perfect numbers otherwise: nothing was measured) must
    /// fail, so the search bisects below them and ends.
    #[test]
    fn a_timed_out_step_fails_and_the_search_bisects_below_it() {
        let mut search = StepSearch::new(10, 2000);
        let mut tried = Vec::new();
        let mut timed_out = Vec::new();
        while let Some(v) = search.next() {
            assert!(tried.len() < 20, "the search does not end: {tried:?}");
            tried.push(v);
            let hangs = v >= 1000;
            let outcome = StepOutcome {
                loss_pct: if hangs { 0.0 } else { 0.1 },
                server_cpu_pct: if hangs { 0.0 } else { 50.0 },
                all_joined: true,
                timed_out: hangs,
            };
            if hangs {
                timed_out.push(v);
            }
            search.record(v, passes(&outcome));
        }
        assert_eq!(&tried[..8], &[10, 20, 40, 80, 160, 320, 640, 1280]);
        let best = search.best().expect("a passing load");
        assert!((900..1000).contains(&best), "best {best}, tried {tried:?}");
        assert!(!timed_out.is_empty() && timed_out.iter().all(|v| *v > best));
        // After the first timeout, no step at or above it is tried again.
        assert!(tried[8..].iter().all(|v| *v < 1280), "{tried:?}");
    }
}
