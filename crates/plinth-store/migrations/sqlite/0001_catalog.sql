-- The catalog: locations, the files read from them, entities, relations
-- and the flattened search index. Entity identity is the canonical
-- lowercase reference `kind:namespace/name`.

CREATE TABLE locations (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at TEXT NOT NULL,
    refreshed_at TEXT,
    -- 'ok', 'problems' (read, with findings) or 'failed' (could not be read).
    refresh_status TEXT,
    refresh_message TEXT,
    UNIQUE (type, target)
);

-- One row per file read for a location; `hash` detects change, `findings`
-- keeps what was wrong in the file and `targets` the files its Location
-- entities point to (JSON arrays), so unchanged files need no parsing.
CREATE TABLE location_files (
    location_id TEXT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    findings TEXT NOT NULL DEFAULT '[]',
    targets TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (location_id, path)
);

CREATE TABLE entities (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    ref TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    location_id TEXT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    etag TEXT NOT NULL,
    generation INTEGER NOT NULL,
    -- The entity as written (plus the annotations the catalog adds), JSON.
    body TEXT NOT NULL,
    -- Status items (problems with the newest version), JSON array.
    status TEXT NOT NULL DEFAULT '[]',
    -- 1 when its location no longer defines it and orphans are kept.
    orphan INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX entities_location_file ON entities (location_id, file);

-- Relations, both directions of each pair, stored with the entity whose
-- spec gave them: reading an entity's relations is one indexed lookup, and
-- removing an entity removes exactly what it gave.
CREATE TABLE relations (
    origin_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    source_ref TEXT NOT NULL,
    type TEXT NOT NULL,
    type_key TEXT NOT NULL,
    target_ref TEXT NOT NULL
);
CREATE INDEX relations_origin ON relations (origin_id);
CREATE INDEX relations_source ON relations (source_ref);
CREATE INDEX relations_target ON relations (type_key, target_ref);

-- Flattened `key = value` rows of each entity, lowercase, for filters,
-- facets and ordering (Backstage's search table); `original_value` keeps
-- the value as written, for facets.
CREATE TABLE search (
    entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT,
    original_value TEXT
);
-- (key, value) finds entities; (entity, key, value) checks one entity.
CREATE INDEX search_key_value ON search (key, value, entity_id);
CREATE INDEX search_entity ON search (entity_id, key, value);

-- An entity claimed by a second location: the first keeps it.
CREATE TABLE conflicts (
    ref TEXT NOT NULL,
    location_id TEXT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    PRIMARY KEY (ref, location_id)
);

-- Bumped by every write that changes what queries answer, in the same
-- transaction; caches of counts and facets are valid while it stands.
CREATE TABLE catalog_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
