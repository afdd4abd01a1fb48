//! The client candidates one participant may trickle (`candidate`): bounded and deduplicated.
//!
//! The relay is ICE-lite: it never checks towards a client's candidates, it learns the client's
//! address from the client's own checks. A trickled candidate only helps `rtc` pair early, so a
//! handful is plenty; every one costs memory in the connection's agent and work on each later
//! candidate, so an endless stream of them (a hostile client) must stop at a small cap instead
//! of growing the agent without bound. `.local` (mDNS) candidates are ignored outright: the
//! relay does not resolve names, and the client's checks bring its real address anyway.

/// Most remote candidates one ICE session of a participant takes (a browser trickles a few:
/// host, server-reflexive, relay, per interface).
pub(crate) const MAX_REMOTE_CANDIDATES: usize = 16;

/// Longest candidate line looked at.
const MAX_CANDIDATE_LEN: usize = 1024;

/// What to do with one trickled candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CandidateVerdict {
    /// New: hand it to the connection.
    Add,
    /// End of candidates (empty line): nothing to do.
    EndOfCandidates,
    /// Seen before, an mDNS name, or nonsense: ignored and counted.
    Ignore,
    /// Over [`MAX_REMOTE_CANDIDATES`]: refused and counted.
    OverLimit,
}

/// The candidates taken in the current ICE session.
#[derive(Debug, Default)]
pub(crate) struct RemoteCandidates {
    seen: Vec<String>,
    /// The client was told once that it sent too many (no error per extra candidate).
    pub(crate) told_over_limit: bool,
}

impl RemoteCandidates {
    /// Judges one candidate line and remembers it when it is to be added. O(cap).
    pub(crate) fn admit(&mut self, candidate: &str) -> CandidateVerdict {
        let candidate = candidate.trim();
        if candidate.is_empty() {
            return CandidateVerdict::EndOfCandidates;
        }
        if candidate.len() > MAX_CANDIDATE_LEN || is_mdns(candidate) {
            return CandidateVerdict::Ignore;
        }
        if self.seen.iter().any(|seen| seen == candidate) {
            return CandidateVerdict::Ignore;
        }
        if self.seen.len() >= MAX_REMOTE_CANDIDATES {
            return CandidateVerdict::OverLimit;
        }
        self.seen.push(candidate.to_owned());
        CandidateVerdict::Add
    }

    /// A new ICE session (restart): the client trickles its candidates afresh.
    pub(crate) fn reset(&mut self) {
        self.seen.clear();
        self.told_over_limit = false;
    }
}

/// Whether the candidate's address (the fifth field of `candidate:<foundation> <component>
/// <transport> <priority> <address> <port> typ …`) is an mDNS name.
fn is_mdns(candidate: &str) -> bool {
    candidate
        .split_ascii_whitespace()
        .nth(4)
        .is_some_and(|address| address.to_ascii_lowercase().ends_with(".local"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> String {
        format!(
            "candidate:{i} 1 udp 2122260223 192.0.2.{} 5000{} typ host",
            i % 250,
            i % 10
        )
    }

    #[test]
    fn candidates_stop_at_the_cap_and_duplicates_are_ignored() {
        let mut candidates = RemoteCandidates::default();
        for i in 0..MAX_REMOTE_CANDIDATES {
            assert_eq!(candidates.admit(&line(i)), CandidateVerdict::Add);
        }
        assert_eq!(candidates.admit(&line(0)), CandidateVerdict::Ignore);
        assert_eq!(
            candidates.admit(&line(MAX_REMOTE_CANDIDATES)),
            CandidateVerdict::OverLimit
        );
        assert_eq!(candidates.admit(""), CandidateVerdict::EndOfCandidates);
        candidates.reset();
        assert_eq!(
            candidates.admit(&line(MAX_REMOTE_CANDIDATES)),
            CandidateVerdict::Add
        );
    }

    #[test]
    fn mdns_and_oversized_candidates_are_ignored() {
        let mut candidates = RemoteCandidates::default();
        let mdns = "candidate:1 1 udp 2122260223 3f1c2a9e-1b2c-4d5e-8f90-123456789abc.local 54321 typ host";
        assert_eq!(candidates.admit(mdns), CandidateVerdict::Ignore);
        assert_eq!(
            candidates.admit(&"x".repeat(2000)),
            CandidateVerdict::Ignore
        );
    }
}
