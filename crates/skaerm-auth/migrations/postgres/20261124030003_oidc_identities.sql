-- Single sign-on identities: the staff member an OpenID Connect subject logs in as.
CREATE TABLE auth_oidc_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    staff_id      TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
