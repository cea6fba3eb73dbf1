-- The index tables (search rows, relations, words) are written and deleted
-- only by the store, in the same transaction as their entity, which
-- deletes them explicitly before the entity (PostgreSQL dropped these
-- foreign keys in its migration 0004). Checking them cost a probe of the
-- entities table per inserted row: 2.6 million probes in a first ingest of
-- 100,000 entities. SQLite cannot drop a constraint: each table is copied
-- into one without it. Rows and indexes stay as they were.
-- From this version on, `search.original_value` is NULL where the value as
-- written equals the lowercase value (readers use coalesce): narrower rows.
CREATE TABLE relations_new (
    origin_id INTEGER NOT NULL,
    source_ref TEXT NOT NULL,
    type TEXT NOT NULL,
    type_key TEXT NOT NULL,
    target_ref TEXT NOT NULL
);
INSERT INTO relations_new SELECT origin_id, source_ref, type, type_key, target_ref FROM relations;
DROP TABLE relations;
ALTER TABLE relations_new RENAME TO relations;
CREATE INDEX relations_origin ON relations (origin_id);
CREATE INDEX relations_source ON relations (source_ref);
CREATE INDEX relations_target ON relations (type_key, target_ref);

CREATE TABLE search_new (
    entity_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    original_value TEXT
);
INSERT INTO search_new SELECT entity_id, key, value, original_value FROM search;
DROP TABLE search;
ALTER TABLE search_new RENAME TO search;
CREATE INDEX search_key_value ON search (key, value, entity_id);
CREATE INDEX search_entity ON search (entity_id);

CREATE TABLE search_tokens_new (
    token TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (token, entity_id)
) WITHOUT ROWID;
INSERT INTO search_tokens_new SELECT token, entity_id, weight FROM search_tokens;
DROP TABLE search_tokens;
ALTER TABLE search_tokens_new RENAME TO search_tokens;
CREATE INDEX search_tokens_entity ON search_tokens (entity_id);
