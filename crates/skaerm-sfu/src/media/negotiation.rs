//! The relay-offers negotiation state of one peer, as a plain state machine.
//!
//! The relay is always the offerer, so there is no glare: at most one offer is outstanding,
//! and a change that needs renegotiation while an offer is outstanding is remembered and
//! offered as soon as the answer arrives. An ICE restart the client asks for is such a change:
//! it rides on the next offer, and a second ask while one is under way adds nothing.

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerVerdict {
    /// It answers the outstanding offer: apply it.
    Apply,
    /// It answers an older offer or there is none outstanding: ignore it.
    Stale,
}

/// Offer/answer bookkeeping of one peer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Negotiation {
    revision: u32,
    outstanding: Option<u32>,
    wanted: bool,
    /// The next offer restarts ICE.
    restart_wanted: bool,
    /// The outstanding offer restarts ICE.
    restart_outstanding: bool,
}

impl Negotiation {
    /// A change needs a new offer. Returns true when the offer should be made now (nothing is
    /// outstanding); otherwise it is made after the current answer.
    pub(crate) fn request(&mut self) -> bool {
        self.wanted = true;
        self.outstanding.is_none()
    }

    /// The client asked for an ICE restart. Returns true when the restart offer should be made
    /// now; otherwise the next offer (after the current answer) carries it.
    pub(crate) fn request_restart(&mut self) -> bool {
        self.restart_wanted = true;
        self.request()
    }

    /// An ICE restart is asked for or on its way to the client (its answer not yet applied).
    pub(crate) fn restart_under_way(&self) -> bool {
        self.restart_wanted || self.restart_outstanding
    }

    /// Whether the offer about to be made must restart ICE.
    pub(crate) fn next_offer_restarts(&self) -> bool {
        self.restart_wanted
    }

    /// An offer is being sent; returns its revision.
    pub(crate) fn offer_sent(&mut self) -> u32 {
        self.revision += 1;
        self.outstanding = Some(self.revision);
        self.wanted = false;
        self.restart_outstanding = self.restart_wanted;
        self.restart_wanted = false;
        self.revision
    }

    /// The revision of the outstanding offer, if any.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> Option<u32> {
        self.outstanding
    }

    /// Judges an answer carrying `revision`.
    pub(crate) fn judge_answer(&self, revision: u32) -> AnswerVerdict {
        if self.outstanding == Some(revision) {
            AnswerVerdict::Apply
        } else {
            AnswerVerdict::Stale
        }
    }

    /// The outstanding answer was applied. Returns true when a new offer is wanted now.
    pub(crate) fn answer_applied(&mut self) -> bool {
        self.outstanding = None;
        self.restart_outstanding = false;
        self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_offers_at_once() {
        let mut n = Negotiation::default();
        assert!(n.request());
        assert_eq!(n.offer_sent(), 1);
        assert_eq!(n.outstanding(), Some(1));
    }

    #[test]
    fn request_during_outstanding_offer_is_deferred_until_the_answer() {
        let mut n = Negotiation::default();
        n.request();
        let rev = n.offer_sent();
        assert!(!n.request(), "must not offer while one is outstanding");
        assert_eq!(n.judge_answer(rev), AnswerVerdict::Apply);
        assert!(
            n.answer_applied(),
            "the deferred change must be offered now"
        );
        assert_eq!(n.offer_sent(), 2);
        assert!(!n.answer_applied());
    }

    #[test]
    fn stale_and_unsolicited_answers_are_ignored() {
        let mut n = Negotiation::default();
        assert_eq!(
            n.judge_answer(1),
            AnswerVerdict::Stale,
            "nothing outstanding"
        );
        n.request();
        n.offer_sent();
        n.answer_applied();
        n.request();
        let rev = n.offer_sent();
        assert_eq!(n.judge_answer(rev - 1), AnswerVerdict::Stale);
        assert_eq!(n.judge_answer(rev + 1), AnswerVerdict::Stale);
        assert_eq!(n.judge_answer(rev), AnswerVerdict::Apply);
    }

    #[test]
    fn a_restart_asked_during_an_outstanding_offer_rides_on_the_next_one() {
        let mut n = Negotiation::default();
        n.request();
        let first = n.offer_sent();
        assert!(!n.restart_under_way());
        assert!(!n.request_restart(), "must wait for the outstanding answer");
        assert!(n.restart_under_way());
        assert_eq!(
            n.outstanding(),
            Some(first),
            "the outstanding offer is unchanged"
        );
        assert_eq!(n.judge_answer(first), AnswerVerdict::Apply);
        assert!(n.answer_applied(), "the restart offer is due now");
        assert!(n.next_offer_restarts());
        let second = n.offer_sent();
        assert!(!n.next_offer_restarts(), "only one offer restarts");
        assert!(n.restart_under_way(), "until its answer is applied");
        assert_eq!(n.judge_answer(second), AnswerVerdict::Apply);
        assert!(!n.answer_applied());
        assert!(!n.restart_under_way());
    }

    #[test]
    fn a_restart_with_nothing_outstanding_offers_at_once() {
        let mut n = Negotiation::default();
        n.request();
        let rev = n.offer_sent();
        n.answer_applied();
        assert!(n.request_restart());
        assert!(n.next_offer_restarts());
        assert_eq!(n.offer_sent(), rev + 1);
    }
}
