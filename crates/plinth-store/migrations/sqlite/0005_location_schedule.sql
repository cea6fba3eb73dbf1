-- Scheduled refreshes as jobs any replica may take: when each location is
-- next due (milliseconds since the epoch; 0 = now), and who holds its lease
-- until when. A lease that runs out is free for another replica.
ALTER TABLE locations ADD COLUMN next_refresh_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locations ADD COLUMN lease_holder TEXT;
ALTER TABLE locations ADD COLUMN lease_until INTEGER;
