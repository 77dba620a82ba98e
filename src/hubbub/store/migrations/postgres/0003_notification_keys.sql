-- A backend's own key for a notification: the same key for the same user again
-- stores nothing new (a retried POST is not a second notification).
ALTER TABLE notifications ADD COLUMN key TEXT;
CREATE UNIQUE INDEX notifications_key ON notifications (user_id, key) WHERE key IS NOT NULL;
