-- The index tables (search rows, relations, words) are written and deleted
-- only by the store, in the same transaction as their entity, which
-- deletes them explicitly before the entity. Their foreign keys cost a
-- trigger per inserted row: without them a first ingest of 100,000
-- entities took 26-30 s instead of 45 s, and they ensured nothing the
-- store does not already.
-- (SQLite keeps them: there they are checked in the same B-tree probe.)
ALTER TABLE search DROP CONSTRAINT IF EXISTS search_entity_id_fkey;
ALTER TABLE relations DROP CONSTRAINT IF EXISTS relations_origin_id_fkey;
ALTER TABLE search_tokens DROP CONSTRAINT IF EXISTS search_tokens_entity_id_fkey;
