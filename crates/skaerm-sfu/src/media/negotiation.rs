//! The relay-offers negotiation state of one peer, as a plain state machine.
//!
//! The relay is always the offerer, so there is no glare: at most one offer is outstanding,
//! and a change that needs renegotiation while an offer is outstanding is remembered and
//! offered as soon as the answer arrives.

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
}

impl Negotiation {
    /// A change needs a new offer. Returns true when the offer should be made now (nothing is
    /// outstanding); otherwise it is made after the current answer.
    pub(crate) fn request(&mut self) -> bool {
        self.wanted = true;
        self.outstanding.is_none()
    }

    /// An offer is being sent; returns its revision.
    pub(crate) fn offer_sent(&mut self) -> u32 {
        self.revision += 1;
        self.outstanding = Some(self.revision);
        self.wanted = false;
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
}
