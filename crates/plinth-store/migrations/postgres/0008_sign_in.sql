-- Local sign-in, as SQLite's migration 0009 (which says what each table
-- holds).
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
