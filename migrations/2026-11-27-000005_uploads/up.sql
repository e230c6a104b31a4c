-- Multipart uploads in progress, so that one left behind by a node that died (its parts
-- stored, never completed or aborted) is aborted when the node starts again, or by any node
-- once it is a day old. S3 stores keep such parts (and bill for them) until they are aborted.
CREATE TABLE uploads (
    upload_id   text        PRIMARY KEY,
    key         text        NOT NULL,
    node        text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
