-- As SQLite's migration 5: when each location's refresh is next due
-- (milliseconds since the epoch; 0 = now), and who holds its lease until when.
ALTER TABLE locations ADD COLUMN next_refresh_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE locations ADD COLUMN lease_holder TEXT;
ALTER TABLE locations ADD COLUMN lease_until BIGINT;
