-- Token signing keys (Ed25519 seeds) and local staff accounts (argon2id hashes).
CREATE TABLE auth_signing_keys (
    kid           TEXT PRIMARY KEY,
    seed          BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    retired_at_ms INTEGER
);

CREATE TABLE auth_local_accounts (
    username      TEXT PRIMARY KEY,
    staff_id      TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
