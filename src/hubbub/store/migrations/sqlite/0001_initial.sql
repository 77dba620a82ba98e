-- Rooms keep their last sequence number here, so that retention, which deletes
-- messages, never makes a number reusable.
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL,
    client_id TEXT,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- One copy per client id from one sender in one room, whatever node wrote it.
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX messages_ts ON messages (ts);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    payload TEXT NOT NULL,
    read_at INTEGER
);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    last_seen INTEGER NOT NULL
) WITHOUT ROWID;
