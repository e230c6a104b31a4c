// @generated automatically by Diesel CLI.

diesel::table! {
    tasks (id) {
        id -> Uuid,
        kind -> Text,
        status -> Text,
        payload -> Nullable<Bytea>,
        payload_key -> Nullable<Text>,
        payload_size -> Int8,
        result -> Nullable<Bytea>,
        result_key -> Nullable<Text>,
        result_size -> Nullable<Int8>,
        error -> Nullable<Text>,
        attempts -> Int4,
        submitted_by -> Text,
        node -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        next_attempt_at -> Nullable<Timestamptz>,
        owner -> Nullable<Text>,
        priority -> Int2,
        run_at -> Nullable<Timestamptz>,
        key -> Nullable<Text>,
        progress -> Nullable<Int2>,
        progress_note -> Nullable<Text>,
    }
}

diesel::table! {
    external_kinds (name) {
        name -> Text,
        registered_at -> Timestamptz,
        seen_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        owner -> Text,
        due -> Timestamptz,
    }
}

diesel::table! {
    task_keys (owner, key) {
        owner -> Text,
        key -> Text,
        task_id -> Uuid,
        fingerprint -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paused (target) {
        target -> Text,
        at -> Timestamptz,
        by -> Nullable<Text>,
    }
}

diesel::table! {
    schedules (owner, name) {
        name -> Text,
        cron -> Text,
        tz -> Text,
        kind -> Text,
        payload -> Bytea,
        missed -> Text,
        owner -> Text,
        next_at -> Timestamptz,
        last_at -> Nullable<Timestamptz>,
        last_task -> Nullable<Uuid>,
        created_at -> Timestamptz,
        skipped -> Int8,
        last_skip -> Nullable<Text>,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    task_partitions (name) {
        name -> Text,
        lo_day -> Nullable<Date>,
        hi_day -> Date,
        detached -> Bool,
    }
}

diesel::table! {
    uploads (upload_id) {
        upload_id -> Text,
        key -> Text,
        node -> Text,
        started_at -> Timestamptz,
    }
}

diesel::table! {
    tokens (name) {
        name -> Text,
        hash -> Bytea,
        role -> Text,
        max_inflight -> Nullable<Int4>,
        rate -> Nullable<Float8>,
        max_payload -> Nullable<Int8>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        max_schedules -> Nullable<Int4>,
    }
}

diesel::table! {
    nodes (name) {
        name -> Text,
        seen_at -> Timestamptz,
        state -> Jsonb,
    }
}

diesel::table! {
    node_seconds (at, node) {
        node -> Text,
        at -> Timestamptz,
        finished -> Int8,
        failed -> Int8,
        latency -> Array<Int8>,
    }
}
