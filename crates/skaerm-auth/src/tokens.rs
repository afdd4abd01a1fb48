//! JSON Web Tokens: media tokens (one visit, one participant, used to join its room) and staff
//! session tokens (carried in an HttpOnly cookie).
//!
//! Only `EdDSA` with a known `kid` is accepted; everything else is refused before the
//! signature is looked at. Time is an input (`now`), never read here, so every refusal is
//! testable to the millisecond.

use crate::citizen_link::LinkRef;
use crate::devices::DeviceRef;
use crate::keys::KeySet;
use crate::refs::{ParticipantRef, SessionRef, StaffRef, TenantRef, VisitRef};
use crate::roles::Roles;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Audience of media tokens.
pub const MEDIA_AUDIENCE: &str = "skaerm-media";
/// Audience of staff session tokens.
pub const SESSION_AUDIENCE: &str = "skaerm-staff";
/// Audience of login-flow tokens (single sign-on state kept in the browser, signed).
pub const LOGIN_FLOW_AUDIENCE: &str = "skaerm-login-flow";
/// Longest token accepted (bytes).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock tolerance for `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 5;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, unparseable, too long, or missing required claims.
    #[error("malformed token")]
    Malformed,
    /// An algorithm other than EdDSA (`none`, `HS256`, …).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No `kid` in the header.
    #[error("token has no key id")]
    MissingKid,
    /// A `kid` this installation does not have.
    #[error("unknown key id")]
    UnknownKid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// For another audience (e.g. a session token used to join media).
    #[error("wrong audience")]
    WrongAudience,
    /// From another issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Past its `exp`.
    #[error("expired")]
    Expired,
    /// Before its `nbf`.
    #[error("not yet valid")]
    NotYetValid,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Role in a visit's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRole {
    /// Staff running the visit.
    Host,
    /// Citizen or invited guest.
    Guest,
}

/// What a media token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaGrantRequest {
    /// Who.
    pub participant: ParticipantRef,
    /// Which visit.
    pub visit: VisitRef,
    /// Which municipality.
    pub tenant: TenantRef,
    /// In which role.
    pub role: MediaRole,
    /// Display name shown to the others.
    pub name: String,
    /// Set only when a paired tablet answers a staff member's call (`GET /api/device/call`):
    /// which tablet, called by whom. Admission lets such a token skip the waiting room.
    pub answered_call: Option<AnsweredCall>,
    /// What the token was issued on (a citizen link, a staff login): admission checks at every
    /// join that it is still live, so the token dies with it. `None` only for tokens that carry
    /// their proof elsewhere (an invite's id, a tablet's answered call).
    pub issued_on: Option<IssuedOn>,
}

/// What a media token was issued on: the `on` claim, checked again at every join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuedOn {
    /// A citizen link (of a visit or a series), by its id: the token dies when the link is
    /// re-issued or revoked.
    Link(LinkRef),
    /// A staff login: the token dies at logout and when the staff member's roles change (which
    /// ends their sessions).
    Session(SessionRef),
}

/// A staff member's call to a paired tablet, answered: the `call` claim of the tablet's
/// media token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredCall {
    /// The tablet that answered.
    pub device: DeviceRef,
    /// The staff member who called it.
    pub by: StaffRef,
}

/// A verified media token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaClaims {
    /// Who.
    pub participant: ParticipantRef,
    /// Which visit.
    pub visit: VisitRef,
    /// Which municipality.
    pub tenant: TenantRef,
    /// In which role.
    pub role: MediaRole,
    /// Display name.
    pub name: String,
    /// The answered tablet call this token was issued for, if any (see
    /// [`MediaGrantRequest::answered_call`]).
    pub answered_call: Option<AnsweredCall>,
    /// What it was issued on (see [`MediaGrantRequest::issued_on`]).
    pub issued_on: Option<IssuedOn>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// What a session (access) token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The login it belongs to (revoked on logout).
    pub session: SessionRef,
    /// The staff member.
    pub staff: StaffRef,
    /// Their municipality.
    pub tenant: TenantRef,
    /// What they may do.
    pub roles: Roles,
    /// Their display name.
    pub name: String,
}

/// A verified session (access) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// The login it belongs to.
    pub session: SessionRef,
    /// The staff member.
    pub staff: StaffRef,
    /// Their municipality.
    pub tenant: TenantRef,
    /// What they may do.
    pub roles: Roles,
    /// Their display name.
    pub name: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The registered claims every token carries.
#[derive(Debug, Serialize, Deserialize)]
struct Registered {
    iss: String,
    aud: String,
    sub: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: Uuid,
}

#[derive(Debug, Serialize, Deserialize)]
struct MediaJwt {
    #[serde(flatten)]
    registered: Registered,
    visit: Uuid,
    tenant: Uuid,
    role: MediaRole,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<AnsweredCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on: Option<IssuedOn>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FlowJwt {
    #[serde(flatten)]
    registered: Registered,
    flow: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionJwt {
    #[serde(flatten)]
    registered: Registered,
    sid: Uuid,
    tenant: Uuid,
    roles: Roles,
    name: String,
}

/// Lifetime of a staff access token (renewed through the session's refresh secret).
pub const ACCESS_LIFETIME_MINUTES: i64 = 15;

/// Issues and verifies tokens with one key set (replaceable at run time: key rotation).
pub struct TokenService {
    keys: std::sync::RwLock<KeySet>,
    issuer: String,
    media_lifetime: Duration,
    session_lifetime: Duration,
}

impl TokenService {
    /// A service signing with `keys` as `issuer`; media tokens live 10 minutes, staff access
    /// tokens [`ACCESS_LIFETIME_MINUTES`].
    pub fn new(keys: KeySet, issuer: &str) -> Self {
        TokenService {
            keys: std::sync::RwLock::new(keys),
            issuer: issuer.to_owned(),
            media_lifetime: Duration::minutes(10),
            session_lifetime: Duration::minutes(ACCESS_LIFETIME_MINUTES),
        }
    }

    /// Replaces the key set (after [`crate::keys::KeyStore::rotate`]): new tokens are signed
    /// with its active key, tokens of its retired keys still verify.
    pub fn replace_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// The `kid` new tokens are signed with.
    pub fn active_kid(&self) -> String {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .signing()
            .0
            .to_owned()
    }

    fn registered(
        &self,
        audience: &str,
        subject: Uuid,
        now: DateTime<Utc>,
        life: Duration,
    ) -> Registered {
        Registered {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            sub: subject,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + life).timestamp(),
            jti: Uuid::new_v4(),
        }
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (kid, key) = keys.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// A media token for one visit and participant.
    pub fn issue_media(
        &self,
        request: &MediaGrantRequest,
        now: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        self.sign(&MediaJwt {
            registered: self.registered(
                MEDIA_AUDIENCE,
                request.participant.0,
                now,
                self.media_lifetime,
            ),
            visit: request.visit.0,
            tenant: request.tenant.0,
            role: request.role,
            name: request.name.clone(),
            call: request.answered_call,
            on: request.issued_on,
        })
    }

    /// Verifies a media token at `now`.
    pub fn verify_media(&self, token: &str, now: DateTime<Utc>) -> Result<MediaClaims, TokenError> {
        let jwt: MediaJwt =
            self.verify(token, MEDIA_AUDIENCE, now, |c: &MediaJwt| &c.registered)?;
        Ok(MediaClaims {
            participant: ParticipantRef(jwt.registered.sub),
            visit: VisitRef(jwt.visit),
            tenant: TenantRef(jwt.tenant),
            role: jwt.role,
            name: jwt.name,
            answered_call: jwt.call,
            issued_on: jwt.on,
            expires_at: DateTime::from_timestamp(jwt.registered.exp, 0).unwrap_or(now),
        })
    }

    /// A session token for a staff member.
    pub fn issue_session(
        &self,
        request: &SessionRequest,
        now: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        self.sign(&SessionJwt {
            registered: self.registered(
                SESSION_AUDIENCE,
                request.staff.0,
                now,
                self.session_lifetime,
            ),
            sid: request.session.0,
            tenant: request.tenant.0,
            roles: request.roles,
            name: request.name.clone(),
        })
    }

    /// A signed, short-lived token carrying a login flow's state (e.g. the single sign-on
    /// `state`, PKCE verifier and nonce), so any node can finish a flow another started.
    pub fn issue_login_flow(
        &self,
        flow: &serde_json::Value,
        now: DateTime<Utc>,
        life: Duration,
    ) -> Result<String, TokenError> {
        self.sign(&FlowJwt {
            registered: self.registered(LOGIN_FLOW_AUDIENCE, Uuid::new_v4(), now, life),
            flow: flow.clone(),
        })
    }

    /// Verifies a login-flow token at `now`; returns what it carries.
    pub fn verify_login_flow(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Value, TokenError> {
        let jwt: FlowJwt =
            self.verify(token, LOGIN_FLOW_AUDIENCE, now, |c: &FlowJwt| &c.registered)?;
        Ok(jwt.flow)
    }

    /// Verifies a session token at `now` (signature and time only: whether its session was
    /// revoked is the session store's question).
    pub fn verify_session(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<SessionClaims, TokenError> {
        let jwt: SessionJwt =
            self.verify(token, SESSION_AUDIENCE, now, |c: &SessionJwt| &c.registered)?;
        Ok(SessionClaims {
            session: SessionRef(jwt.sid),
            staff: StaffRef(jwt.registered.sub),
            tenant: TenantRef(jwt.tenant),
            roles: jwt.roles,
            name: jwt.name,
            expires_at: DateTime::from_timestamp(jwt.registered.exp, 0).unwrap_or(now),
        })
    }

    fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        now: DateTime<Utc>,
        registered: impl Fn(&T) -> &Registered,
    ) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            // An algorithm jsonwebtoken does not even know (`none`) fails to parse: tell it
            // apart from garbage.
            Err(_) if header_alg(token).is_some_and(|alg| alg != "EdDSA") => {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            Err(_) => return Err(TokenError::Malformed),
        };
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verifying(&kid)
            .cloned()
            .ok_or(TokenError::UnknownKid)?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time is checked below against `now`, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.issuer.as_str()]);
        // Signature, audience and issuer first (claims as plain JSON), so a token for another
        // audience is reported as such even when its claims have another shape.
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
                _ => TokenError::Malformed,
            },
        )?;
        let claims: T = serde_json::from_value(data.claims).map_err(|_| TokenError::Malformed)?;
        let r = registered(&claims);
        let now = now.timestamp();
        if r.exp <= now - LEEWAY_SECONDS {
            return Err(TokenError::Expired);
        }
        if r.nbf > now + LEEWAY_SECONDS {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// The `alg` a token's header claims, read without trusting anything else.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeyPair;
    use jsonwebtoken::EncodingKey;

    fn service() -> TokenService {
        TokenService::new(KeySet::new(SigningKeyPair::generate().unwrap().0), "skaerm")
    }

    fn request() -> MediaGrantRequest {
        MediaGrantRequest {
            participant: ParticipantRef(Uuid::new_v4()),
            visit: VisitRef(Uuid::new_v4()),
            tenant: TenantRef(Uuid::new_v4()),
            role: MediaRole::Guest,
            name: "Karen J.".into(),
            answered_call: None,
            issued_on: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    fn b64(value: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// A token with an arbitrary header and the claims of a valid media token.
    fn forged(service: &TokenService, header: serde_json::Value, signature: &str) -> String {
        let token = service.issue_media(&request(), now()).unwrap();
        let claims = token.split('.').nth(1).unwrap();
        format!("{}.{claims}.{signature}", b64(header))
    }

    #[test]
    fn a_media_token_round_trips() {
        let s = service();
        let r = request();
        let claims = s
            .verify_media(&s.issue_media(&r, now()).unwrap(), now())
            .unwrap();
        assert_eq!(claims.participant, r.participant);
        assert_eq!(claims.visit, r.visit);
        assert_eq!(claims.tenant, r.tenant);
        assert_eq!(claims.role, MediaRole::Guest);
        assert_eq!(claims.name, "Karen J.");
        assert_eq!(claims.answered_call, None, "a link's token names no call");
        assert_eq!(claims.issued_on, None);
    }

    #[test]
    fn what_a_token_was_issued_on_round_trips() {
        let s = service();
        for on in [
            IssuedOn::Link(LinkRef(Uuid::new_v4())),
            IssuedOn::Session(SessionRef(Uuid::new_v4())),
        ] {
            let token = s
                .issue_media(
                    &MediaGrantRequest {
                        issued_on: Some(on),
                        ..request()
                    },
                    now(),
                )
                .unwrap();
            assert_eq!(s.verify_media(&token, now()).unwrap().issued_on, Some(on));
        }
    }

    #[test]
    fn an_answered_call_round_trips_and_is_covered_by_the_signature() {
        let s = service();
        let call = AnsweredCall {
            device: DeviceRef(Uuid::new_v4()),
            by: StaffRef(Uuid::new_v4()),
        };
        let token = s
            .issue_media(
                &MediaGrantRequest {
                    answered_call: Some(call),
                    ..request()
                },
                now(),
            )
            .unwrap();
        assert_eq!(
            s.verify_media(&token, now()).unwrap().answered_call,
            Some(call)
        );
        // Adding the claim to a link's token breaks its signature.
        let plain = s.issue_media(&request(), now()).unwrap();
        let parts: Vec<&str> = plain.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["call"] = serde_json::json!({"device": call.device.0, "by": call.by.0});
        let tampered = format!("{}.{}.{}", parts[0], b64(claims), parts[2]);
        assert_eq!(
            s.verify_media(&tampered, now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_with_our_kid_is_a_bad_signature() {
        let s = service();
        let other = service();
        let token = other.issue_media(&request(), now()).unwrap();
        let our_kid = s.active_kid();
        let mut parts: Vec<&str> = token.split('.').collect();
        let header = b64(serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": our_kid}));
        parts[0] = &header;
        assert_eq!(
            s.verify_media(&parts.join("."), now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let s = service();
        let token = forged(&s, serde_json::json!({"alg": "none", "typ": "JWT"}), "");
        assert_eq!(
            s.verify_media(&token, now()),
            Err(TokenError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn hs256_with_the_public_key_as_secret_is_refused() {
        let s = service();
        let kid = s.active_kid();
        let claims = serde_json::json!({"iss": "skaerm", "aud": MEDIA_AUDIENCE,
            "sub": Uuid::new_v4(), "iat": now().timestamp(), "nbf": now().timestamp(),
            "exp": now().timestamp() + 600, "jti": Uuid::new_v4(), "visit": Uuid::new_v4(),
            "tenant": Uuid::new_v4(), "role": "host", "name": "x"});
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(b"public key bytes"),
        )
        .unwrap();
        assert_eq!(
            s.verify_media(&token, now()),
            Err(TokenError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn unknown_and_missing_kid_are_refused() {
        let s = service();
        let token = s.issue_media(&request(), now()).unwrap();
        let signature = token.split('.').nth(2).unwrap().to_owned();
        let unknown = forged(
            &s,
            serde_json::json!({"alg": "EdDSA", "kid": "nope"}),
            &signature,
        );
        assert_eq!(s.verify_media(&unknown, now()), Err(TokenError::UnknownKid));
        let missing = forged(&s, serde_json::json!({"alg": "EdDSA"}), &signature);
        assert_eq!(s.verify_media(&missing, now()), Err(TokenError::MissingKid));
    }

    #[test]
    fn expiry_and_not_before_are_checked_against_now() {
        let s = service();
        let token = s.issue_media(&request(), now()).unwrap();
        assert!(s.verify_media(&token, now() + Duration::minutes(9)).is_ok());
        assert_eq!(
            s.verify_media(&token, now() + Duration::minutes(11)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.verify_media(&token, now() - Duration::minutes(1)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn session_and_media_tokens_are_not_interchangeable() {
        let s = service();
        let session = s
            .issue_session(
                &SessionRequest {
                    session: SessionRef(Uuid::new_v4()),
                    staff: StaffRef(Uuid::new_v4()),
                    tenant: TenantRef(Uuid::new_v4()),
                    roles: Roles::of(&[crate::roles::Role::Staff]),
                    name: "Mette".into(),
                },
                now(),
            )
            .unwrap();
        assert!(s.verify_session(&session, now()).is_ok());
        assert_eq!(
            s.verify_media(&session, now()),
            Err(TokenError::WrongAudience)
        );
        let media = s.issue_media(&request(), now()).unwrap();
        assert_eq!(
            s.verify_session(&media, now()),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn login_flow_tokens_round_trip_and_are_not_sessions() {
        let s = service();
        let flow = serde_json::json!({"state": "abc", "provider": "p"});
        let token = s
            .issue_login_flow(&flow, now(), Duration::minutes(10))
            .unwrap();
        assert_eq!(s.verify_login_flow(&token, now()), Ok(flow));
        assert_eq!(
            s.verify_login_flow(&token, now() + Duration::minutes(11)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.verify_session(&token, now()),
            Err(TokenError::WrongAudience)
        );
        let media = s.issue_media(&request(), now()).unwrap();
        assert_eq!(
            s.verify_login_flow(&media, now()),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn another_issuer_is_refused() {
        let keys = SigningKeyPair::generate().unwrap().0;
        let seedless_kid = keys.kid().to_owned();
        let s = TokenService::new(KeySet::new(keys), "skaerm");
        let token = s.issue_media(&request(), now()).unwrap();
        // Same key, another expected issuer.
        let mut other = s;
        other.issuer = "someone-else".into();
        assert_eq!(other.active_kid(), seedless_kid);
        assert_eq!(
            other.verify_media(&token, now()),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        let s = service();
        for token in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "...",
            "a.b.c.d",
            "ey.ey.ey",
            &"x".repeat(9000),
        ] {
            let result = s.verify_media(token, now());
            assert!(result.is_err(), "{token:?} must be refused");
        }
        let real = s.issue_media(&request(), now()).unwrap();
        for len in 0..real.len() {
            assert!(s.verify_media(&real[..len], now()).is_err());
        }
    }

    #[test]
    fn a_retired_key_still_verifies_its_tokens() {
        let (old, _) = SigningKeyPair::generate().unwrap();
        let (old_again, _) = (SigningKeyPair::from_seed([7; 32]).unwrap(), ());
        let old_service = TokenService::new(KeySet::new(old_again), "skaerm");
        let token = old_service.issue_media(&request(), now()).unwrap();
        let rotated = TokenService::new(
            KeySet::new(old).with_retired(SigningKeyPair::from_seed([7; 32]).unwrap()),
            "skaerm",
        );
        assert!(rotated.verify_media(&token, now()).is_ok());
    }
}
