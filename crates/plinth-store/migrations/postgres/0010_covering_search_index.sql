-- The search index carries the value as written too (SQLite's 0011), so
-- that a facet over the whole catalog can be an index-only scan. Built
-- under another name first: dropping the old index locks the table against
-- readers on every replica, only for the moment of the swap this way.
CREATE INDEX search_key_value_covering ON search (key, value, entity_id) INCLUDE (original_value);
DROP INDEX search_key_value;
ALTER INDEX search_key_value_covering RENAME TO search_key_value;
