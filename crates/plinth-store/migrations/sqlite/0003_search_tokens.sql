-- Words of names, titles, descriptions and annotation values, one row per
-- entity and word with the word's weight, for the ranked search people
-- use: a word is found by prefix, a range of the primary key. Clustered by
-- word (WITHOUT ROWID), so the table is its own index. Rows for entities
-- already stored are written by the migrator after this script.
CREATE TABLE search_tokens (
    token TEXT NOT NULL,
    entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    weight INTEGER NOT NULL,
    PRIMARY KEY (token, entity_id)
) WITHOUT ROWID;
CREATE INDEX search_tokens_entity ON search_tokens (entity_id);
