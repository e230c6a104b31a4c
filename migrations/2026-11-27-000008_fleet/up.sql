-- What each node says of itself every second, so that any node can show the whole fleet.
CREATE TABLE nodes (
    name     text        PRIMARY KEY,
    -- Its last beat (a node silent for 5 s is shown down; one silent for an hour forgotten).
    seen_at  timestamptz NOT NULL,
    -- Version, start, dependencies, load and lanes as the node saw them
    -- (tasknode_protocol::fleet::NodeState).
    state    jsonb       NOT NULL
);
-- The tasks each node finished in each second of the last minutes (older rows are pruned by
-- their node): counts and a histogram of end-to-end times (bucket counts, fixed bounds).
CREATE TABLE node_seconds (
    node      text        NOT NULL,
    at        timestamptz NOT NULL,
    finished  bigint      NOT NULL,
    failed    bigint      NOT NULL,
    latency   bigint[]    NOT NULL,
    PRIMARY KEY (at, node)
);
