-- Retention of notifications: read ones by when they were read, and each user's
-- oldest ones past the per-user cap, found without reading the whole table.
CREATE INDEX notifications_read_at ON notifications (read_at) WHERE read_at IS NOT NULL;
CREATE INDEX notifications_by_user ON notifications (user_id, id);
