//! Counters a media worker keeps without atomics on its hot path; the worker publishes them to
//! Prometheus periodically.

/// Why a packet or message was dropped. Every drop is counted by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A datagram from an address no peer is bound to, and not a routable STUN check.
    UnknownSource,
    /// A STUN check naming a ufrag no peer has.
    UnknownUfrag,
    /// Not STUN, DTLS or RTP by its first byte, or too short.
    Malformed,
    /// The peer connection rejected the datagram (bad SRTP auth, bad DTLS record, …).
    PeerRejected,
    /// Media for a subscriber whose connection is not up yet.
    SubscriberNotReady,
    /// Media in a payload type the subscriber did not negotiate.
    PayloadType,
    /// The subscriber's connection refused the packet.
    ForwardFailed,
    /// The socket refused to send (buffer full or error).
    SendFailed,
    /// A session's outbound signalling queue was full; the session was dropped.
    SignalQueueFull,
    /// Video not forwarded to a subscriber in audio-only fallback (low bandwidth).
    VideoPaused,
    /// Video not forwarded while a subscriber's stream waits for a keyframe (after a resume).
    AwaitingKeyframe,
    /// A late packet from before the point where a subscriber's stream changed source.
    BeforeSwitch,
    /// A simulcast layer this subscriber does not receive (not a loss: the selection).
    LayerNotSelected,
    /// An ICE check that arrived before the client's answer and could not be held (too many,
    /// too big) or expired before the answer came.
    EarlyCheck,
    /// A STUN binding request from a participant's address (or naming its ufrag) whose
    /// username or integrity does not match the live relay-side credentials.
    StunBadIntegrity,
    /// A datagram that looks like STUN but does not decode, or is not a binding request.
    StunMalformed,
    /// A trickled candidate over the per-participant cap.
    CandidateOverLimit,
    /// A trickled candidate ignored: a duplicate, an mDNS `.local` name, or oversized.
    CandidateIgnored,
}

impl DropReason {
    /// All reasons, for registering metric labels up front.
    pub const ALL: [DropReason; 18] = [
        DropReason::UnknownSource,
        DropReason::UnknownUfrag,
        DropReason::Malformed,
        DropReason::PeerRejected,
        DropReason::SubscriberNotReady,
        DropReason::PayloadType,
        DropReason::ForwardFailed,
        DropReason::SendFailed,
        DropReason::SignalQueueFull,
        DropReason::VideoPaused,
        DropReason::AwaitingKeyframe,
        DropReason::BeforeSwitch,
        DropReason::LayerNotSelected,
        DropReason::EarlyCheck,
        DropReason::StunBadIntegrity,
        DropReason::StunMalformed,
        DropReason::CandidateOverLimit,
        DropReason::CandidateIgnored,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSource => "unknown_source",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::Malformed => "malformed",
            DropReason::PeerRejected => "peer_rejected",
            DropReason::SubscriberNotReady => "subscriber_not_ready",
            DropReason::PayloadType => "payload_type",
            DropReason::ForwardFailed => "forward_failed",
            DropReason::SendFailed => "send_failed",
            DropReason::SignalQueueFull => "signal_queue_full",
            DropReason::VideoPaused => "video_paused",
            DropReason::AwaitingKeyframe => "awaiting_keyframe",
            DropReason::BeforeSwitch => "before_switch",
            DropReason::LayerNotSelected => "layer_not_selected",
            DropReason::EarlyCheck => "early_check",
            DropReason::StunBadIntegrity => "stun_bad_integrity",
            DropReason::StunMalformed => "stun_malformed",
            DropReason::CandidateOverLimit => "candidate_over_limit",
            DropReason::CandidateIgnored => "candidate_ignored",
        }
    }

    /// Position in [`DropReason::ALL`], which lists the reasons in declaration order.
    fn index(self) -> usize {
        self as usize
    }
}

/// Monotonic counters of one media worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received on the UDP port.
    pub datagrams_in: u64,
    /// Bytes received on the UDP port.
    pub bytes_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// RTP packets forwarded from a publisher to a subscriber.
    pub rtp_forwarded: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// NACK packets received from subscribers (answered from the send cache).
    pub nacks_received: u64,
    /// Times a subscriber's video was paused for low bandwidth.
    pub video_pauses: u64,
    /// Times a subscriber's paused video was resumed.
    pub video_resumes: u64,
    /// Participants whose media connection was still not up [`crate::media::core::ICE_TIMEOUT`]
    /// after joining (each counted once; seen by the quality snapshot).
    pub ice_timeouts: u64,
    /// ICE restarts made at a client's request (`restart_ice`).
    pub ice_restarts: u64,
    /// `restart_ice` requests refused because the participant asked too often.
    pub ice_restarts_refused: u64,
    /// ICE checks held because they arrived before the client's answer, and fed to the
    /// connection when the answer was applied (each saves the client a check retry).
    pub early_checks_replayed: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Counts `n` drops.
    pub fn drop_many(&mut self, reason: DropReason, n: usize) {
        self.drops[reason.index()] += n as u64;
    }

    /// Drops so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_counts_in_its_own_slot() {
        let mut counters = Counters::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(
                reason.index(),
                i,
                "ALL must list {reason:?} in declaration order"
            );
            counters.drop_many(reason, i + 1);
        }
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(counters.drops(reason), i as u64 + 1);
        }
    }
}
