-- Local sign-in: accounts (argon2 password hashes), sessions (the
-- SHA-256 digest of the cookie's secret, with the form token that guards
-- the portal's forms), and failed attempts, counted to throttle guessing.
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    user_ref TEXT NOT NULL,
    role TEXT,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account);
CREATE TABLE sign_in_failures (
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX sign_in_failures_name ON sign_in_failures (name, at);
