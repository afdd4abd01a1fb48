//! Display names (staff, teams, guests): the one check every name passes before it is stored or
//! shown to others. A name is trimmed; control characters (Unicode `Cc`) and bidirectional
//! controls (which could make a name read differently than it is stored) are refused; a name
//! must show something (not only whitespace or invisible format characters, Unicode `Cf`); and
//! it is bounded in length.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Most characters of a staff member's display name.
pub const MAX_STAFF_NAME_CHARS: usize = 200;
/// Most characters of a team's name.
pub const MAX_TEAM_NAME_CHARS: usize = 100;

/// Why a display name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// Nothing visible is left after trimming.
    #[error("the name is empty or invisible")]
    Empty,
    /// Longer than allowed.
    #[error("the name is longer than {max} characters")]
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// A control character or a bidirectional control.
    #[error("the name contains a control or text-direction character")]
    ForbiddenCharacter,
}

/// Bidirectional controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069),
/// marks (U+200E, U+200F, U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A character a display name may never hold.
fn is_forbidden(c: char) -> bool {
    c.general_category() == GeneralCategory::Control || is_bidi_control(c)
}

/// A character that shows nothing by itself.
fn is_invisible(c: char) -> bool {
    c.is_whitespace() || c.general_category() == GeneralCategory::Format
}

/// The name, trimmed, if it may be used: at most `max` characters, no forbidden character,
/// something visible.
pub fn validate(raw: &str, max: usize) -> Result<String, DisplayNameError> {
    let name = raw.trim();
    if name.chars().any(is_forbidden) {
        return Err(DisplayNameError::ForbiddenCharacter);
    }
    if name.chars().all(is_invisible) {
        return Err(DisplayNameError::Empty);
    }
    if name.chars().count() > max {
        return Err(DisplayNameError::TooLong { max });
    }
    Ok(name.to_owned())
}

/// A usable name made from an untrusted one (e.g. from an identity provider): forbidden
/// characters removed, trimmed, cut to `max` characters; `None` when nothing visible is left.
pub fn sanitise(raw: &str, max: usize) -> Option<String> {
    let kept: String = raw.chars().filter(|c| !is_forbidden(*c)).collect();
    let cut: String = kept.trim().chars().take(max).collect();
    validate(&cut, max).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_trimmed() {
        assert_eq!(
            validate("  Karen Jensen ", 200),
            Ok("Karen Jensen".to_owned())
        );
        assert_eq!(
            validate("Søren Ørsted-Åberg", 200),
            Ok("Søren Ørsted-Åberg".to_owned())
        );
        assert_eq!(validate("محمد", 200), Ok("محمد".to_owned()));
        // A zero-width joiner inside an emoji sequence is fine when something shows.
        assert!(validate("Ida 👩\u{200D}⚕\u{FE0F}", 200).is_ok());
    }

    #[test]
    fn control_and_bidi_characters_are_refused() {
        for bad in [
            "Karen\u{0}",
            "Karen\nJensen",
            "Karen\u{7}",
            "Karen\u{1B}[31m",
            "Karen\u{85}Jensen",
            "evil\u{202E}gnp.exe",
            "a\u{202A}b",
            "a\u{2066}b",
            "a\u{2069}b",
            "a\u{200E}b",
            "a\u{200F}b",
            "a\u{061C}b",
        ] {
            assert_eq!(
                validate(bad, 200),
                Err(DisplayNameError::ForbiddenCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_and_invisible_names_are_refused() {
        for bad in [
            "",
            "   ",
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            " \u{2060}\u{FEFF} ",
            "\u{00AD}",
        ] {
            assert_eq!(validate(bad, 200), Err(DisplayNameError::Empty), "{bad:?}");
        }
    }

    #[test]
    fn length_is_bounded_in_characters() {
        assert!(validate(&"å".repeat(60), 60).is_ok());
        assert_eq!(
            validate(&"å".repeat(61), 60),
            Err(DisplayNameError::TooLong { max: 60 })
        );
    }

    #[test]
    fn sanitising_strips_what_validation_refuses() {
        assert_eq!(
            sanitise("Karen\u{202E} Jensen\n", 200),
            Some("Karen Jensen".to_owned())
        );
        assert_eq!(sanitise("\u{202E}\u{200B}\u{0}", 200), None);
        assert_eq!(sanitise(&"x".repeat(300), 200).map(|n| n.len()), Some(200));
    }
}
