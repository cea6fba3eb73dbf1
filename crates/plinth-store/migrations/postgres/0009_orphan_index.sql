-- A refresh starts by reading its location's orphans (kept entities no
-- file defines): found through this small index instead of checking every
-- entity of the location (a million rows at scale).
CREATE INDEX entities_orphans ON entities (location_id) WHERE orphan = 1;
