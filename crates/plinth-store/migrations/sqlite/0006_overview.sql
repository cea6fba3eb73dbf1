-- The portal's home page: the newest changes, and the entities with
-- problems, each one short index walk instead of a scan of every body.
CREATE INDEX entities_updated ON entities (updated_at, id);
CREATE INDEX entities_problems ON entities (id) WHERE status <> '[]';
