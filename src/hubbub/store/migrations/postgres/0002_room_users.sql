-- Who chatted in each room, and when each was last seen there: a room's offline
-- members, with their last-seen time.
CREATE TABLE room_users (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_users_recent ON room_users (room, last_seen);

-- Those who chatted before this table existed, last seen when they last chatted.
INSERT INTO room_users (room, user_id, last_seen)
    SELECT room, user_id, MAX(ts) FROM messages GROUP BY room, user_id;
