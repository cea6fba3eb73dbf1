-- The catalog on PostgreSQL: the same tables as on SQLite (see
-- ../sqlite/, migrations 1 to 4), so the store's queries mean the same on
-- both. Text compares byte by byte (COLLATE "C"), as SQLite's does: order
-- and prefix ranges then agree whatever the database's locale. Integers are
-- BIGINT and JSON is kept as text, the types both drivers share.

CREATE TABLE locations (
    id TEXT COLLATE "C" PRIMARY KEY,
    type TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    refreshed_at TEXT,
    refresh_status TEXT,
    refresh_message TEXT,
    UNIQUE (type, target)
);

CREATE TABLE location_files (
    location_id TEXT COLLATE "C" NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    path TEXT COLLATE "C" NOT NULL,
    hash TEXT NOT NULL,
    findings TEXT NOT NULL DEFAULT '[]',
    targets TEXT NOT NULL DEFAULT '[]',
    stat TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (location_id, path)
);

CREATE TABLE entities (
    id BIGINT PRIMARY KEY,
    uid TEXT COLLATE "C" NOT NULL UNIQUE,
    ref TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    location_id TEXT COLLATE "C" NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    file TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    generation BIGINT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '[]',
    orphan BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX entities_location_file ON entities (location_id, file);

CREATE TABLE relations (
    origin_id BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    source_ref TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    type_key TEXT COLLATE "C" NOT NULL,
    target_ref TEXT COLLATE "C" NOT NULL
);
CREATE INDEX relations_origin ON relations (origin_id);
CREATE INDEX relations_source ON relations (source_ref);
CREATE INDEX relations_target ON relations (type_key, target_ref);

CREATE TABLE search (
    entity_id BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C",
    original_value TEXT COLLATE "C"
);
CREATE INDEX search_key_value ON search (key, value, entity_id);
CREATE INDEX search_entity ON search (entity_id);

CREATE TABLE search_tokens (
    token TEXT COLLATE "C" NOT NULL,
    entity_id BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    weight BIGINT NOT NULL,
    PRIMARY KEY (token, entity_id)
);
CREATE INDEX search_tokens_entity ON search_tokens (entity_id);

CREATE TABLE conflicts (
    ref TEXT COLLATE "C" NOT NULL,
    location_id TEXT COLLATE "C" NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    file TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ref, location_id)
);

CREATE TABLE catalog_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
