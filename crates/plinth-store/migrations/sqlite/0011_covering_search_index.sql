-- The search index carries the value as written too, so that a facet over
-- the whole catalog (counts by value, shown as written) is read from the
-- index alone: 0.2 s instead of 2.5 s for one facet at a million entities.
-- Most rows have no written form apart from the lowercase value and cost
-- the index one byte each; building it takes no longer.
DROP INDEX search_key_value;
CREATE INDEX search_key_value ON search (key, value, entity_id, original_value);
