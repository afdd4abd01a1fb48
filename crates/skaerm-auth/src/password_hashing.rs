//! Password hashing with a bound on concurrency, waiting and memory.
//!
//! An argon2id hash takes ~19 MiB and tens of milliseconds of one core. Unbounded, a login
//! spray ran one hash per request on Tokio's blocking pool (up to 512 threads): 64 concurrent
//! logins took RSS from 142 MiB to 6.3 GB, and glibc kept most of it in its per-thread arenas
//! after the spray. Here:
//!
//! - at most `permits` hashes run at once (a semaphore, sized to the cores by default), each
//!   on a blocking thread;
//! - a login waits for a permit at most `max_wait`, and at most `max_waiting` logins wait at
//!   all; past either it gets [`HashingError::Busy`] (the server answers 503 with
//!   Retry-After) and the refusal is counted;
//! - each running hash borrows one of at most `permits` pre-allocated memory buffers
//!   (`hash_password_into_with_memory`), which are never freed, so a spray allocates nothing
//!   per login and RSS stays at `permits` × 19 MiB however long it lasts. Capping glibc's
//!   arenas (`M_ARENA_MAX`, `malloc_trim`) was the alternative; it needs `libc` calls at
//!   start-up, tunes the whole process and still allocates and frees 19 MiB per login.
//! - an unknown username is verified against a dummy hash computed once with the same
//!   parameters, under the same permit, so it costs exactly what a known one costs.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use prometheus::{IntCounter, IntGauge};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest argon2 memory a stored hash may ask for (KiB); larger ones never match.
const MAX_M_COST_KIB: u32 = 64 * 1024;

/// Why a hash was not computed.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every permit is taken and the wait would exceed the deadline (or too many wait).
    #[error("password hashing is saturated; try again shortly")]
    Busy,
    /// argon2 or the blocking thread failed.
    #[error("password hashing: {0}")]
    Failed(String),
}

/// Counters and gauges of the hasher (registered by the server under these names).
#[derive(Clone, Debug)]
pub struct HashingMetrics {
    /// `skaerm_password_hashes_in_flight`: hashes running now.
    pub in_flight: IntGauge,
    /// `skaerm_password_hashes_in_flight_max`: the most that ever ran at once.
    pub in_flight_max: IntGauge,
    /// `skaerm_password_hash_permits`: how many may run at once.
    pub permits: IntGauge,
    /// `skaerm_password_hashes_refused_total`: logins answered 503 because hashing was
    /// saturated.
    pub refused: IntCounter,
}

impl HashingMetrics {
    fn new(permits: usize) -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric name");
        let metrics = HashingMetrics {
            in_flight: gauge(
                "skaerm_password_hashes_in_flight",
                "Password hashes running now",
            ),
            in_flight_max: gauge(
                "skaerm_password_hashes_in_flight_max",
                "Most password hashes that ever ran at once",
            ),
            permits: gauge(
                "skaerm_password_hash_permits",
                "Password hashes allowed to run at once",
            ),
            refused: IntCounter::new(
                "skaerm_password_hashes_refused_total",
                "Logins refused with 503 because password hashing was saturated",
            )
            .expect("valid metric name"),
        };
        metrics
            .permits
            .set(i64::try_from(permits).unwrap_or(i64::MAX));
        metrics
    }

    /// Registers them all in `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.in_flight.clone()))?;
        registry.register(Box::new(self.in_flight_max.clone()))?;
        registry.register(Box::new(self.permits.clone()))?;
        registry.register(Box::new(self.refused.clone()))
    }
}

/// The bounded hasher. Share one per process (see [`PasswordHashing::shared`]) or per server.
#[derive(Debug)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    permit_count: usize,
    max_wait: Duration,
    max_waiting: usize,
    waiting: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    /// Free argon2 memory buffers; never more than `permit_count` exist.
    memory: Mutex<Vec<Vec<Block>>>,
    dummy: OnceLock<String>,
    metrics: HashingMetrics,
}

static SHARED: LazyLock<Arc<PasswordHashing>> =
    LazyLock::new(|| Arc::new(PasswordHashing::new(0, Duration::from_secs(5))));

/// Half the cores (at least one): hashing never takes every core from the media relay.
pub fn default_permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

impl PasswordHashing {
    /// At most `permits` hashes at once (0: [`default_permits`]), a login waiting at most
    /// `max_wait` for one.
    pub fn new(permits: usize, max_wait: Duration) -> Self {
        let permits = if permits == 0 {
            default_permits()
        } else {
            permits
        };
        PasswordHashing {
            permits: Arc::new(Semaphore::new(permits)),
            permit_count: permits,
            max_wait,
            max_waiting: permits.saturating_mul(32),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            memory: Mutex::new(Vec::new()),
            dummy: OnceLock::new(),
            metrics: HashingMetrics::new(permits),
        }
    }

    /// The process-wide hasher (default size, 5 s wait).
    pub fn shared() -> Arc<PasswordHashing> {
        SHARED.clone()
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.permit_count
    }

    /// Its metrics.
    pub fn metrics(&self) -> &HashingMetrics {
        &self.metrics
    }

    /// A new argon2id PHC string for `password` (random salt, default parameters).
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, HashingError> {
        self.run(move |memory| hash_with(&password, memory)).await?
    }

    /// Whether `password` matches `stored`; with `None` (unknown username) it is checked
    /// against a dummy hash at the same cost and never matches.
    pub async fn verify(
        self: &Arc<Self>,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        let this = self.clone();
        self.run(move |memory| match stored {
            Some(hash) => verify_with(&password, &hash, memory),
            None => {
                let dummy = this
                    .dummy
                    .get_or_init(|| hash_with("not a real password", memory).unwrap_or_default());
                let _ = verify_with(&password, dummy, memory);
                false
            }
        })
        .await
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, HashingError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = Waiting::enter(&self.waiting);
        if waiting.position >= self.max_waiting {
            self.metrics.refused.inc();
            return Err(HashingError::Busy);
        }
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.metrics.refused.inc();
                Err(HashingError::Busy)
            }
        }
    }

    /// Runs `job` on a blocking thread with a permit and a memory buffer. The permit moves
    /// into the thread, so a caller that gives up (client gone) still holds its slot until
    /// the hash ends: never more than `permits` run.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = self.acquire().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::enter(&this);
            let mut memory = this
                .memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_else(|| vec![Block::new(); Params::DEFAULT.block_count()]);
            let out = job(&mut memory);
            this.memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(memory);
            out
        })
        .await
        .map_err(|e| HashingError::Failed(e.to_string()))
    }
}

/// One running hash, counted until it ends (a panic included).
struct Running<'a>(&'a PasswordHashing);

impl<'a> Running<'a> {
    fn enter(hashing: &'a PasswordHashing) -> Self {
        let running = hashing.running.fetch_add(1, Ordering::SeqCst) + 1;
        let most = hashing
            .most_running
            .fetch_max(running, Ordering::SeqCst)
            .max(running);
        hashing.metrics.in_flight.inc();
        hashing
            .metrics
            .in_flight_max
            .set(i64::try_from(most).unwrap_or(i64::MAX));
        Running(hashing)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One waiter counted while it waits.
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    position: usize,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let position = counter.fetch_add(1, Ordering::SeqCst);
        Waiting { counter, position }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hash_with(password: &str, memory: &mut Vec<Block>) -> Result<String, HashingError> {
    let failed = |e: &dyn std::fmt::Display| HashingError::Failed(e.to_string());
    let params = Params::DEFAULT;
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            &mut memory[..blocks],
        )
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `memory` (grown once if a
/// stored hash asks for more, up to [`MAX_M_COST_KIB`]). Malformed hashes never match.
fn verify_with(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map(Option::unwrap_or_default)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_and_interoperate_with_the_argon2_crate() {
        let hashing = Arc::new(PasswordHashing::new(1, Duration::from_secs(5)));
        let hash = hashing.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hashing
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hashing
                .verify("wrong horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hashing
                .verify("x".into(), Some("garbage".into()))
                .await
                .unwrap()
        );
        assert!(
            !hashing
                .verify("not a real password".into(), None)
                .await
                .unwrap()
        );
        // Hashes stored before this module existed still verify, and ours verify there.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        use argon2::password_hash::PasswordHasher;
        let old = Argon2::default()
            .hash_password(b"old one")
            .unwrap()
            .to_string();
        assert!(hashing.verify("old one".into(), Some(old)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_runs_more_than_its_permits_and_refuses_past_the_deadline() {
        let hashing = Arc::new(PasswordHashing::new(2, Duration::from_millis(1)));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let hashing = hashing.clone();
                tokio::spawn(async move { hashing.verify("guess".into(), None).await })
            })
            .collect();
        let mut busy = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(matched) => assert!(!matched),
                Err(HashingError::Busy) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            busy > 0,
            "a 1 ms deadline refuses some of 12 concurrent hashes"
        );
        assert_eq!(hashing.metrics().refused.get(), busy);
        assert!(hashing.metrics().in_flight_max.get() <= 2);
        assert_eq!(hashing.metrics().in_flight.get(), 0);
        assert!(
            hashing.memory.lock().unwrap().len() <= 2,
            "one buffer per permit at most"
        );
    }
}
