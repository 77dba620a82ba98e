-- Rooms keep their last sequence number here, so that retention, which deletes
-- messages, never makes a number reusable; appends lock the room's row, which
-- orders writers from every node.
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    room TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL,
    client_id TEXT,
    PRIMARY KEY (room, seq)
);

-- One copy per client id from one sender in one room, whatever node wrote it.
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX messages_ts ON messages (ts);

CREATE TABLE notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    payload JSONB NOT NULL,
    read_at BIGINT
);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    last_seen BIGINT NOT NULL
);
