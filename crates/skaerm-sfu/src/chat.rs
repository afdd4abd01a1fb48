//! In-call text chat rules: what a chat message may contain and how often a session may send
//! one. Pure functions of their input and `now`; the signalling session applies them before a
//! message reaches the media worker, which only relays it to the room. Nothing is stored and
//! nothing of the text is logged (GDPR: messages live only in the participants' pages).

use std::time::{Duration, Instant};

/// Longest accepted chat text, in characters (after trimming). Longer texts are refused, not
/// truncated.
pub const MAX_CHAT_CHARS: usize = 1000;

/// Why a chat text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChatRefusal {
    /// Nothing left after trimming.
    #[error("chat text is empty")]
    Empty,
    /// More than [`MAX_CHAT_CHARS`] characters.
    #[error("chat text is longer than 1000 characters")]
    TooLong,
    /// A control character other than newline.
    #[error("chat text contains control characters")]
    ControlCharacter,
}

/// The text to relay: trimmed, non-empty, at most [`MAX_CHAT_CHARS`] characters, no control
/// characters except `\n`.
pub fn validate_chat_text(text: &str) -> Result<String, ChatRefusal> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatRefusal::Empty);
    }
    if text.chars().count() > MAX_CHAT_CHARS {
        return Err(ChatRefusal::TooLong);
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ChatRefusal::ControlCharacter);
    }
    Ok(text.to_owned())
}

/// A token bucket: `capacity` messages at once, refilled at `capacity` per `period`.
#[derive(Debug, Clone)]
pub struct ChatRateLimit {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl ChatRateLimit {
    /// The relay's default: 5 messages per 5 seconds.
    pub fn standard(now: Instant) -> Self {
        Self::new(5, Duration::from_secs(5), now)
    }

    /// A full bucket of `capacity` tokens refilled over `period`.
    pub fn new(capacity: u32, period: Duration, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        let period = period.as_secs_f64().max(f64::EPSILON);
        ChatRateLimit {
            capacity,
            per_second: capacity / period,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token if there is one: `true` means the message may go.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_newlines_kept() {
        assert_eq!(
            validate_chat_text("  hej\nmed dig \t").unwrap(),
            "hej\nmed dig"
        );
        assert_eq!(
            validate_chat_text("<img src=x onerror=alert(1)>").unwrap(),
            "<img src=x onerror=alert(1)>"
        );
    }

    #[test]
    fn empty_long_and_control_texts_are_refused() {
        assert_eq!(validate_chat_text(""), Err(ChatRefusal::Empty));
        assert_eq!(validate_chat_text(" \n\t "), Err(ChatRefusal::Empty));
        assert_eq!(
            validate_chat_text(&"æ".repeat(MAX_CHAT_CHARS))
                .unwrap()
                .chars()
                .count(),
            MAX_CHAT_CHARS
        );
        assert_eq!(
            validate_chat_text(&"æ".repeat(MAX_CHAT_CHARS + 1)),
            Err(ChatRefusal::TooLong)
        );
        for bad in [
            "a\u{7}b",
            "a\rb",
            "a\u{1b}[2Jb",
            "a\u{0}b",
            "a\tb",
            "a\u{85}b",
        ] {
            assert_eq!(
                validate_chat_text(bad),
                Err(ChatRefusal::ControlCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_bucket_trips_after_capacity_and_refills_over_time() {
        let start = Instant::now();
        let mut limit = ChatRateLimit::standard(start);
        for _ in 0..5 {
            assert!(limit.allow(start));
        }
        assert!(!limit.allow(start));
        assert!(!limit.allow(start + Duration::from_millis(900)));
        // One token per second comes back.
        assert!(limit.allow(start + Duration::from_millis(1000)));
        assert!(!limit.allow(start + Duration::from_millis(1100)));
        // A long pause refills to capacity, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limit.allow(later));
        }
        assert!(!limit.allow(later));
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut limit = ChatRateLimit::new(1, Duration::from_secs(1), start);
        assert!(limit.allow(start));
        assert!(!limit.allow(start - Duration::from_secs(5)));
        assert!(!limit.allow(start + Duration::from_millis(500)));
        assert!(limit.allow(start + Duration::from_secs(1)));
    }
}
