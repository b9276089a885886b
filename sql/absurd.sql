-- absurd-tui engine: a from-scratch implementation of the Absurd durable-execution
-- database contract (summarised in docs/contract.md), written for absurd-tui.
--
-- Install and upgrade are the same command: run this whole file, in one execute, on an
-- empty database or on one that already has the schema and live queues. Every statement
-- is idempotent (IF NOT EXISTS, OR REPLACE) and the DO block at the end re-runs the
-- per-queue DDL for every registered queue, so existing queues pick up new indexes.
-- Runs on PostgreSQL 14 and later; nothing newer than 14 is used unconditionally.
-- Functions never COMMIT: they work inside a caller's transaction, DDL included.
--
-- Versions: get_schema_version() answers like upstream's, with the upstream release whose
-- contract this file implements ('0.5.1'), so upstream's tools see a release they know.
-- get_engine_revision() (beyond upstream) returns this engine's own revision: bump
-- c_revision in the last block of this file whenever the file changes the schema. That
-- block also fingerprints every function of the schema as installed, so when another tool
-- replaces some of them (absurdctl migrate does), get_engine_revision() returns NULL and
-- absurd-tui asks for `absurd-tui init`, which re-applies this file and restores them.
--
-- NOTIFY channels (payload = the queue name; delivered at commit, and PostgreSQL folds
-- identical notifications of one transaction into one, so they are cheap):
--   absurd_ready    work became claimable now: spawn_task, retry_task, fail_run scheduling
--                   an immediate retry, emit_event waking at least one run, schedule_run
--                   with a wake time <= now. Idle workers LISTEN here instead of polling.
--                   A timer that comes due (a sleep, a retry backoff, an event timeout)
--                   cannot announce itself: nothing runs in the database at that moment.
--                   Workers therefore still poll, at their own interval, for due timers.
--   absurd_changed  some task of the queue changed state: spawn, claim, complete, fail,
--                   sleep/suspend, emit wake-up, cancel, retry, queue create/drop.
--                   Dashboards LISTEN here to refresh at once.
--
-- Durable event timeouts (beyond upstream; upstream issues #96 and #138): await_event
-- returns a third column, timed_out, and takes a seventh argument, p_durable_timeout,
-- that only absurd-tui's SDK passes (true). For such a caller a wait that timed out is
-- recorded on its step, as a checkpoint with status 'timed_out' and a NULL state, so every
-- replay of the step gets (false, NULL, true) instead of waiting again. Callers that leave
-- it false (the official SDKs) see exactly upstream 0.5.1's behaviour: no record is
-- written for them and records written for others are not shown to them. Readers that
-- filter on status = 'committed' (the official SDK's checkpoint preload) never see these
-- rows either.
--
-- Permanent failures (beyond upstream): fail_run with a reason holding "retryable": false
-- fails the task at once, whatever attempts remain (absurd_tui's NonRetryableError).
--
-- Scale: every per-queue statement on the hot path is served by an index that
-- holds live rows only, so claim, sweeps and the task life cycle cost the same with a
-- million finished tasks in the queue as with none. Each index says what it serves.

CREATE SCHEMA IF NOT EXISTS absurd;

-- Whether this file is being applied over upstream Absurd's own schema (it has a queue
-- registry but none of this engine's functions): the upgrade steps at the end do what
-- upstream's own migrations would do for it. Local to this transaction.
DO $$
BEGIN
    PERFORM set_config('absurd.upgrading_upstream',
        (to_regclass('absurd.queues') IS NOT NULL
         AND to_regprocedure('absurd.engine_query(text, text)') IS NULL)::text,
        true);
END;
$$;

-- CREATE OR REPLACE cannot rename a parameter, and callers may pass arguments by name, so
-- every parameter is named as upstream names it. A function of ours from before that rule
-- (or of another implementation) whose names differ is dropped here and created below.
DO $$
DECLARE
    v_signature text;
    v_names text[];
BEGIN
    FOR v_signature, v_names IN VALUES
        ('absurd.uuidv7_floor(timestamptz)', ARRAY['p_ts'])
    LOOP
        IF to_regprocedure(v_signature) IS NOT NULL
           AND (SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(v_signature))
               IS DISTINCT FROM v_names THEN
            EXECUTE format('DROP FUNCTION %s', to_regprocedure(v_signature));
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION absurd.get_schema_version()
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT '0.5.1'::text
$$;

-- A digest of every function of the schema (name, argument types, body), except
-- get_engine_revision itself, whose body holds the digest taken at install time.
CREATE OR REPLACE FUNCTION absurd.engine_fingerprint()
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT md5(coalesce(string_agg(
        p.proname || '(' || p.proargtypes::text || ')' || p.prorettype::text || '=' || md5(p.prosrc),
        ',' ORDER BY p.proname, p.proargtypes::text), ''))
    FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'absurd'::regnamespace
      AND p.proname <> 'get_engine_revision'
$$;

-- ---------------------------------------------------------------------------------------
-- Time and ids
-- ---------------------------------------------------------------------------------------

-- The only clock of the engine. Tests freeze or move it with SET absurd.fake_now.
CREATE OR REPLACE FUNCTION absurd.current_time()
RETURNS timestamptz
LANGUAGE sql
VOLATILE
AS $$
    SELECT coalesce(
        nullif(btrim(current_setting('absurd.fake_now', true)), '')::timestamptz,
        clock_timestamp()
    )
$$;

-- Orders ids minted while the fake clock stands still (see portable_uuidv7).
CREATE SEQUENCE IF NOT EXISTS absurd.fake_clock_id_seq;

-- RFC 9562 UUIDv7: 48 bits of Unix milliseconds, version 7, 12 bits rand_a, variant,
-- 62 random bits. On the real clock rand_a holds the sub-millisecond fraction, so ids of
-- one session stay time-ordered (method 3 of RFC 9562 section 6.2), and on PostgreSQL 18
-- the native uuidv7() is used. Under absurd.fake_now ids are built from the fake time,
-- so they sort with the fake timestamps the engine stores next to them; rand_a then
-- holds a counter, so ids minted at one frozen instant keep their creation order.
CREATE OR REPLACE FUNCTION absurd.portable_uuidv7()
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_fake text := nullif(btrim(current_setting('absurd.fake_now', true)), '');
    v_at timestamptz;
    v_ms bigint;
    v_rand_a integer;
    v_native uuid;
BEGIN
    IF v_fake IS NULL THEN
        IF current_setting('server_version_num')::integer >= 180000 THEN
            -- Dynamic so that the file still loads on servers without uuidv7().
            EXECUTE 'SELECT uuidv7()' INTO v_native;
            RETURN v_native;
        END IF;
        v_at := clock_timestamp();
        v_ms := floor(extract(epoch FROM v_at) * 1000)::bigint;
        v_rand_a := floor((extract(epoch FROM v_at) * 1000 - v_ms) * 4096)::integer;
    ELSE
        v_at := v_fake::timestamptz;
        v_ms := floor(extract(epoch FROM v_at) * 1000)::bigint;
        v_rand_a := (nextval('absurd.fake_clock_id_seq') % 4096)::integer;
    END IF;
    -- The last 16 hex digits of a v4 uuid are random apart from the variant bits, which
    -- are the ones v7 needs as well.
    RETURN (lpad(to_hex(greatest(v_ms, 0)), 12, '0')
            || '7' || lpad(to_hex(least(greatest(v_rand_a, 0), 4095)), 3, '0')
            || right(replace(gen_random_uuid()::text, '-', ''), 16))::uuid;
END;
$$;

-- The timestamp encoded in a UUIDv7 (millisecond precision); NULL for other versions.
CREATE OR REPLACE FUNCTION absurd.uuidv7_timestamp(p_id uuid)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN substr(p_id::text, 15, 1) = '7' THEN
        to_timestamp(
            ('x' || lpad(substr(replace(p_id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint
            / 1000.0)
    END
$$;

-- The smallest UUIDv7 of the millisecond that contains p_ts: a lower bound for id ranges
-- (the bounds of weekly partitions). Outside UUIDv7's 48-bit millisecond range: an error.
CREATE OR REPLACE FUNCTION absurd.uuidv7_floor(p_ts timestamptz)
RETURNS uuid
LANGUAGE plpgsql
IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    v_ms numeric := floor(extract(epoch FROM p_ts) * 1000);
BEGIN
    IF v_ms < 0 OR v_ms >= 281474976710656 THEN
        RAISE EXCEPTION 'Timestamp "%" is outside UUIDv7 supported range', p_ts;
    END IF;
    RETURN (lpad(to_hex(v_ms::bigint), 12, '0') || '70008000000000000000')::uuid;
END;
$$;

-- The start (Monday 00:00 UTC) of the ISO week that contains p_ts.
CREATE OR REPLACE FUNCTION absurd.week_bucket_utc(p_ts timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT date_trunc('week', p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- The suffix of a weekly partition: the last digit of the ISO year and the two-digit ISO
-- week, in UTC ('401' for the week of 2024-01-01; '053' for 2021-01-01, which ISO counts
-- in week 53 of 2020).
CREATE OR REPLACE FUNCTION absurd.partition_week_tag(p_ts timestamptz)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT right(to_char(p_ts AT TIME ZONE 'UTC', 'IYYY'), 1) || to_char(p_ts AT TIME ZONE 'UTC', 'IW')
$$;

-- ---------------------------------------------------------------------------------------
-- JSON option helpers
-- ---------------------------------------------------------------------------------------

-- Revision 1 read retry strategies leniently through this helper; 0.5 validates them.
DROP FUNCTION IF EXISTS absurd.json_number(jsonb);

-- A whole number of seconds (JSON integer, or a string holding one) as bigint, clamped
-- to +-10^10 s so that adding it to a timestamp cannot overflow; NULL for anything else.
CREATE OR REPLACE FUNCTION absurd.json_seconds(p_value jsonb)
RETURNS bigint
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN v IS NOT NULL THEN least(greatest(v, -10000000000), 10000000000)::bigint END
    FROM (SELECT CASE
        WHEN jsonb_typeof(p_value) = 'number' AND p_value::text::numeric = trunc(p_value::text::numeric)
            THEN p_value::text::numeric
        WHEN jsonb_typeof(p_value) = 'string' AND (p_value #>> '{}') ~ '^\s*[-+]?[0-9]{1,18}\s*$'
            THEN (p_value #>> '{}')::numeric
    END AS v) s
$$;

-- When a live task breaks its cancellation policy: enqueue_at + max_delay while it has
-- never started, first_started_at + max_duration once it has. NULL = no deadline.
-- Declared IMMUTABLE so that it can key the t_<q>_cdi index: adding a whole number of
-- seconds to a timestamptz does not depend on the time zone, which is the only reason
-- PostgreSQL marks timestamptz + interval as merely STABLE. PL/pgSQL rather than SQL: an
-- IMMUTABLE SQL function with a STABLE operator inside is never inlined, and a SQL
-- function that is not inlined is parsed and planned again on every call, which every
-- insert and update of a live task would pay; PL/pgSQL keeps its plan for the session.
CREATE OR REPLACE FUNCTION absurd.cancellation_deadline(
    p_cancellation jsonb,
    p_enqueue_at timestamptz,
    p_first_started_at timestamptz
)
RETURNS timestamptz
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_first_started_at IS NULL THEN
        RETURN p_enqueue_at + make_interval(secs => absurd.json_seconds(p_cancellation -> 'max_delay'));
    END IF;
    RETURN p_first_started_at + make_interval(secs => absurd.json_seconds(p_cancellation -> 'max_duration'));
END;
$$;

-- Retry delay in seconds for the failing attempt (contract section 4), and the check of a
-- strategy (SQLSTATE AB003, as upstream 0.5): kind none (the default), fixed or
-- exponential; fixed = base_seconds (default 60); exponential = base_seconds (default 30)
-- * factor (default 2) ^ (attempt - 1), capped by max_seconds (default one day).
-- base_seconds and max_seconds lie between 0 and 86,400, the factor is finite and not
-- negative; numbers may be JSON numbers or strings holding one. An exponential that
-- overflows saturates at the cap (or at 0 for a factor below 1).
CREATE OR REPLACE FUNCTION absurd.retry_delay_seconds(p_strategy jsonb, p_attempt integer)
RETURNS double precision
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    c_limit constant double precision := 86400;
    v_kind text;
    v_base double precision;
    v_factor double precision;
    v_max double precision;
BEGIN
    IF p_strategy IS NULL THEN
        RETURN 0;
    ELSIF jsonb_typeof(p_strategy) <> 'object' THEN
        RAISE EXCEPTION 'retry_strategy must be a JSON object' USING ERRCODE = 'AB003';
    END IF;
    v_kind := coalesce(p_strategy ->> 'kind', 'none');
    IF v_kind NOT IN ('none', 'fixed', 'exponential') THEN
        RAISE EXCEPTION 'Unsupported retry strategy kind "%"', v_kind USING ERRCODE = 'AB003';
    ELSIF v_kind = 'none' THEN
        RETURN 0;
    END IF;

    -- Only the keys the kind uses are read, so only those are checked.
    BEGIN
        v_base := (p_strategy ->> 'base_seconds')::double precision;
        IF v_kind = 'exponential' THEN
            v_factor := (p_strategy ->> 'factor')::double precision;
            v_max := (p_strategy ->> 'max_seconds')::double precision;
        END IF;
    EXCEPTION
        WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RAISE EXCEPTION 'retry_strategy contains an invalid number' USING ERRCODE = 'AB003';
    END;
    v_base := coalesce(v_base, CASE v_kind WHEN 'fixed' THEN 60 ELSE 30 END);
    -- NaN compares above every number, so these range checks refuse it too.
    IF NOT (v_base >= 0 AND v_base <= c_limit) THEN
        RAISE EXCEPTION 'retry_strategy.base_seconds must be between 0 and 86400' USING ERRCODE = 'AB003';
    ELSIF v_kind = 'fixed' THEN
        RETURN v_base;
    END IF;

    v_factor := coalesce(v_factor, 2);
    v_max := coalesce(v_max, c_limit);
    IF NOT (v_factor >= 0 AND v_factor < 'infinity'::double precision) THEN
        RAISE EXCEPTION 'retry_strategy.factor must be a finite non-negative number' USING ERRCODE = 'AB003';
    ELSIF NOT (v_max >= 0 AND v_max <= c_limit) THEN
        RAISE EXCEPTION 'retry_strategy.max_seconds must be between 0 and 86400' USING ERRCODE = 'AB003';
    ELSIF v_base = 0 OR coalesce(p_attempt, 1) <= 1 THEN
        RETURN least(v_base, v_max);
    ELSIF v_factor < 1 THEN
        -- Shrinks towards 0; in log space so that a large attempt cannot underflow.
        RETURN CASE WHEN v_factor = 0 OR ln(v_base) + (p_attempt - 1) * ln(v_factor) < -700 THEN 0
                    ELSE least(v_base * power(v_factor, p_attempt - 1), v_max) END;
    ELSIF ln(v_base) + (p_attempt - 1) * ln(v_factor) >= ln(v_max + 1) THEN
        RETURN v_max;  -- beyond the cap whatever the rounding: no power() that could overflow
    END IF;
    RETURN least(v_base * power(v_factor, p_attempt - 1), v_max);
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Queue registry
-- ---------------------------------------------------------------------------------------

-- Future columns: add them below as ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS absurd.queues (
    queue_name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT absurd.current_time(),
    storage_mode text NOT NULL DEFAULT 'unpartitioned'
        CHECK (storage_mode IN ('unpartitioned', 'partitioned')),
    default_partition text NOT NULL DEFAULT 'enabled'
        CHECK (default_partition IN ('enabled', 'disabled')),
    partition_lookahead interval NOT NULL DEFAULT interval '28 days'
        CHECK (partition_lookahead >= interval '0'),
    partition_lookback interval NOT NULL DEFAULT interval '1 day'
        CHECK (partition_lookback >= interval '0'),
    cleanup_ttl interval NOT NULL DEFAULT interval '30 days'
        CHECK (cleanup_ttl >= interval '0'),
    cleanup_limit integer NOT NULL DEFAULT 1000
        CHECK (cleanup_limit >= 1),
    detach_mode text NOT NULL DEFAULT 'none'
        CHECK (detach_mode IN ('none', 'empty')),
    detach_min_age interval NOT NULL DEFAULT interval '30 days'
        CHECK (detach_min_age >= interval '0')
);

-- Queue names become parts of identifiers: r_<q>_sai must fit in 63 bytes.
CREATE OR REPLACE FUNCTION absurd.validate_queue_name(p_queue_name text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_queue_name IS NULL OR p_queue_name = '' THEN
        RAISE EXCEPTION 'Queue name must be provided';
    END IF;
    IF octet_length(p_queue_name) > 57 THEN
        RAISE EXCEPTION 'Queue name "%" is too long (max 57 bytes).', p_queue_name;
    END IF;
    RETURN p_queue_name;
END;
$$;

-- Creates the per-queue tables and indexes that do not exist yet. Table and index names
-- are always composed with %I, so a queue name may hold any character.
CREATE OR REPLACE FUNCTION absurd.ensure_queue_tables(p_queue_name text)
RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning  -- no "already exists, skipping" notices on re-runs
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    t text := 't_' || q;
    r text := 'r_' || q;
    c text := 'c_' || q;
    e text := 'e_' || q;
    w text := 'w_' || q;
    v_table text;
    v_suffix text;
    v_definition text;
    v_partitioned boolean := coalesce(
        (SELECT storage_mode = 'partitioned' FROM absurd.queues WHERE queue_name = q), false);
    -- A partitioned queue's t_, r_, c_ and w_ are split into weekly ranges of their UUIDv7
    -- keys (ensure_partitions creates them); storage parameters belong to the partitions.
    v_t_storage text := CASE WHEN v_partitioned THEN 'PARTITION BY RANGE (task_id)'
        ELSE 'WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02)' END;
    v_r_storage text := CASE WHEN v_partitioned THEN 'PARTITION BY RANGE (run_id)'
        ELSE 'WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02)' END;
    v_c_storage text := CASE WHEN v_partitioned THEN 'PARTITION BY RANGE (task_id)'
        ELSE 'WITH (fillfactor = 70)' END;
    v_w_storage text := CASE WHEN v_partitioned THEN 'PARTITION BY RANGE (run_id)' ELSE '' END;
BEGIN
    -- Tasks. Queue tables churn (every task is updated a few times, then kept as history),
    -- so autovacuum runs at 2% dead rows instead of 20%: dead index entries of claimed
    -- runs are what an idle claim would otherwise wade through.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS absurd.%I (
            task_id uuid PRIMARY KEY,
            task_name text NOT NULL,
            params jsonb NOT NULL,
            headers jsonb,
            retry_strategy jsonb,
            max_attempts integer,
            cancellation jsonb,
            enqueue_at timestamptz NOT NULL DEFAULT absurd.current_time(),
            first_started_at timestamptz,
            state text NOT NULL
                CHECK (state IN ('pending', 'running', 'sleeping', 'completed', 'failed', 'cancelled')),
            attempts integer NOT NULL DEFAULT 0,
            last_attempt_run uuid,
            completed_payload jsonb,
            cancelled_at timestamptz,
            -- Unique here (serving spawn_task's ON CONFLICT); a partitioned table cannot
            -- hold a unique key without its partition key, so there i_<q> holds the keys.
            idempotency_key text %s
        ) %s$ddl$, t, CASE WHEN v_partitioned THEN '' ELSE 'UNIQUE' END, v_t_storage);

    -- Runs (attempts).
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS absurd.%I (
            run_id uuid PRIMARY KEY,
            task_id uuid NOT NULL,
            attempt integer NOT NULL,
            state text NOT NULL
                CHECK (state IN ('pending', 'running', 'sleeping', 'completed', 'failed', 'cancelled')),
            claimed_by text,
            claim_expires_at timestamptz,
            available_at timestamptz NOT NULL,
            wake_event text,
            event_payload jsonb,
            started_at timestamptz,
            completed_at timestamptz,
            failed_at timestamptz,
            result jsonb,
            failure_reason jsonb,
            created_at timestamptz NOT NULL DEFAULT absurd.current_time()
        ) %s$ddl$, r, v_r_storage);

    -- Checkpoints. The primary key serves every checkpoint read and write, the replay
    -- preload (prefix task_id) and cleanup.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS absurd.%I (
            task_id uuid NOT NULL,
            checkpoint_name text NOT NULL,
            state jsonb,
            status text NOT NULL DEFAULT 'committed',
            owner_run_id uuid,
            updated_at timestamptz NOT NULL DEFAULT absurd.current_time(),
            PRIMARY KEY (task_id, checkpoint_name)
        ) %s$ddl$, c, v_c_storage);

    -- Events: payload IS NULL marks a name awaited but not emitted yet.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS absurd.%I (
            event_name text PRIMARY KEY,
            payload jsonb,
            emitted_at timestamptz NOT NULL DEFAULT absurd.current_time()
        )$ddl$, e);

    -- Wait registrations: one row per run suspended on an event.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS absurd.%I (
            task_id uuid NOT NULL,
            run_id uuid NOT NULL,
            step_name text NOT NULL,
            event_name text NOT NULL,
            timeout_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT absurd.current_time(),
            PRIMARY KEY (run_id, step_name)
        ) %s$ddl$, w, v_w_storage);

    -- Idempotency keys of a partitioned queue: one row per key, naming its task.
    IF v_partitioned THEN
        EXECUTE format($ddl$
            CREATE TABLE IF NOT EXISTS absurd.%I (
                idempotency_key text PRIMARY KEY,
                task_id uuid NOT NULL
            )$ddl$, 'i_' || q);
        IF to_regclass(format('absurd.%I', 'i_' || q || '_ti')) IS NULL THEN
            -- cleanup_tasks releases the keys of the tasks it deletes through this.
            EXECUTE format('CREATE INDEX %I ON absurd.%I (task_id)', 'i_' || q || '_ti', 'i_' || q);
        END IF;
    END IF;

    -- Queues created by revision 1 of this engine lack these two defaults, which other
    -- clients' inserts rely on. Setting a default rewrites nothing, but it does lock the
    -- table briefly, so it happens only where the default is missing: once.
    FOR v_table, v_suffix IN VALUES (e, 'emitted_at'), (w, 'created_at') LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_attribute a
            JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = format('absurd.%I', v_table)::regclass AND a.attname = v_suffix
        ) THEN
            EXECUTE format('ALTER TABLE absurd.%I ALTER COLUMN %I SET DEFAULT absurd.current_time()',
                           v_table, v_suffix);
        END IF;
    END LOOP;

    -- Indexes: (table, index suffix, key and predicate). Only missing ones are created:
    -- CREATE INDEX IF NOT EXISTS locks the table against writes before it finds the index,
    -- so re-applying this file would queue behind every open transaction on the queue.
    FOR v_table, v_suffix, v_definition IN VALUES
        -- Claim (claim_task step 3): the claimable runs in (available_at, run_id) order,
        -- so the claim reads exactly the runs it takes and stops. Partial on the two
        -- claimable states: it holds live runs only, finished history never enters it.
        -- Also serves "waiting on a timer" and "visible now" reads of dashboards.
        (r, '_sai', '(available_at, run_id) WHERE state IN (''pending'', ''sleeping'')'),
        -- A task's runs: cancel_task, cleanup_tasks, dashboard task detail.
        (r, '_ti', '(task_id)'),
        -- Lease expiry (claim_task step 2): running runs with a lease, soonest expiry first.
        (r, '_cei', '(claim_expires_at) WHERE state = ''running'' AND claim_expires_at IS NOT NULL'),
        -- cleanup_tasks, oldest first: completed runs by completion time ...
        (r, '_cai', '(completed_at) WHERE state = ''completed'''),
        -- ... failed runs by failure time (the task's last run decides) ...
        (r, '_fai', '(failed_at) WHERE state = ''failed'''),
        -- ... and cancelled tasks by cancellation time.
        (t, '_cai', '(cancelled_at) WHERE state = ''cancelled'''),
        -- Tasks that carry a cancellation policy (upstream 0.5.1 names and keys it so).
        (t, '_ci', '(task_id) WHERE cancellation IS NOT NULL'),
        -- Cancellation-policy sweep (claim_task step 1): live tasks that carry a policy,
        -- keyed by the moment they break it, so the sweep reads only what it cancels.
        (t, '_cdi', '(absurd.cancellation_deadline(cancellation, enqueue_at, first_started_at))'
                    ' WHERE cancellation IS NOT NULL AND state IN (''pending'', ''sleeping'', ''running'')'),
        -- emit_event: the waits on one event name.
        (w, '_eni', '(event_name)'),
        -- cancel_task and cleanup_tasks: a task's waits.
        (w, '_ti', '(task_id)'),
        -- cleanup_events, oldest first (never-emitted sentinels sort first, at the epoch).
        (e, '_eai', '(emitted_at)')
    LOOP
        IF to_regclass(format('absurd.%I', v_table || v_suffix)) IS NULL THEN
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON absurd.%I %s',
                           v_table || v_suffix, v_table, v_definition);
        END IF;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Queue management
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.create_queue(p_queue_name text, p_storage_mode text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_mode text := lower(btrim(coalesce(p_storage_mode, 'unpartitioned')));
    v_existing text;
BEGIN
    IF v_mode NOT IN ('unpartitioned', 'partitioned') THEN
        RAISE EXCEPTION 'Unsupported queue storage mode "%"', p_storage_mode;
    END IF;

    -- The registry row serialises concurrent creators of one queue: the second waits
    -- for the first to commit, then finds the tables in place.
    INSERT INTO absurd.queues (queue_name, storage_mode)
    VALUES (q, v_mode)
    ON CONFLICT (queue_name) DO NOTHING;
    SELECT storage_mode INTO v_existing
    FROM absurd.queues
    WHERE queue_name = q
    FOR UPDATE;
    IF v_existing <> v_mode THEN
        RAISE EXCEPTION 'Queue "%" already exists with storage mode "%"', q, v_existing;
    END IF;

    PERFORM absurd.ensure_queue_tables(q);
    IF v_mode = 'partitioned' THEN
        PERFORM absurd.ensure_partitions(q);
    END IF;
    PERFORM pg_notify('absurd_changed', q);
END;
$$;

CREATE OR REPLACE FUNCTION absurd.create_queue(p_queue_name text)
RETURNS void
LANGUAGE sql
AS $$
    SELECT absurd.create_queue(p_queue_name, 'unpartitioned')
$$;

-- No name check on purpose: queues with names from before the 57-byte rule can still be
-- dropped.
CREATE OR REPLACE FUNCTION absurd.drop_queue(p_queue_name text)
RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    v_prefix text;
BEGIN
    PERFORM 1 FROM absurd.queues WHERE queue_name = p_queue_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The queue's maintenance jobs go with it, where pg_cron is there to hold any.
    IF absurd.pg_cron_problem() IS NULL THEN
        PERFORM absurd.disable_cron(p_queue_name);
    END IF;
    FOREACH v_prefix IN ARRAY ARRAY['i_', 'w_', 'e_', 'c_', 'r_', 't_'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS absurd.%I CASCADE', v_prefix || p_queue_name);
    END LOOP;
    DELETE FROM absurd.queues WHERE queue_name = p_queue_name;
    PERFORM pg_notify('absurd_changed', left(p_queue_name, 7000));
END;
$$;

CREATE OR REPLACE FUNCTION absurd.list_queues()
RETURNS TABLE (queue_name text)
LANGUAGE sql
STABLE
AS $$
    SELECT q.queue_name FROM absurd.queues q ORDER BY q.queue_name
$$;

CREATE OR REPLACE FUNCTION absurd.get_queue_policy(p_queue_name text)
RETURNS TABLE (
    queue_name text,
    storage_mode text,
    default_partition text,
    partition_lookahead interval,
    partition_lookback interval,
    cleanup_ttl interval,
    cleanup_limit integer,
    detach_mode text,
    detach_min_age interval
)
LANGUAGE sql
STABLE
AS $$
    SELECT q.queue_name, q.storage_mode, q.default_partition, q.partition_lookahead,
           q.partition_lookback, q.cleanup_ttl, q.cleanup_limit, q.detach_mode, q.detach_min_age
    FROM absurd.queues q
    WHERE q.queue_name = p_queue_name
$$;

CREATE OR REPLACE FUNCTION absurd.set_queue_policy(p_queue_name text, p_policy jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_queue absurd.queues%ROWTYPE;
    v_key text;
    v_value jsonb;
    v_interval interval;
    v_text text;
BEGIN
    IF p_policy IS NULL OR jsonb_typeof(p_policy) <> 'object' THEN
        RAISE EXCEPTION 'Queue policy must be a JSON object';
    END IF;
    SELECT * INTO v_queue FROM absurd.queues WHERE queue_name = p_queue_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Queue "%" does not exist', p_queue_name;
    END IF;

    FOR v_key, v_value IN SELECT key, value FROM jsonb_each(p_policy) LOOP
        IF v_key IN ('partition_lookahead', 'partition_lookback', 'cleanup_ttl', 'detach_min_age') THEN
            -- Interval text such as '7 days'; a bare number is taken as seconds.
            v_interval := CASE jsonb_typeof(v_value)
                WHEN 'string' THEN (v_value #>> '{}')::interval
                WHEN 'number' THEN make_interval(secs => (v_value #>> '{}')::double precision)
            END;
            IF v_interval IS NULL THEN
                RAISE EXCEPTION 'Queue policy key "%" must be an interval', v_key;
            END IF;
            IF v_interval < interval '0' THEN
                RAISE EXCEPTION 'Queue policy key "%" must not be negative', v_key;
            END IF;
            CASE v_key
                WHEN 'partition_lookahead' THEN v_queue.partition_lookahead := v_interval;
                WHEN 'partition_lookback' THEN v_queue.partition_lookback := v_interval;
                WHEN 'cleanup_ttl' THEN v_queue.cleanup_ttl := v_interval;
                ELSE v_queue.detach_min_age := v_interval;
            END CASE;
        ELSIF v_key = 'cleanup_limit' THEN
            IF absurd.json_seconds(v_value) IS NULL OR absurd.json_seconds(v_value) < 1
               OR absurd.json_seconds(v_value) > 2147483647 THEN
                RAISE EXCEPTION 'cleanup_limit must be an integer >= 1';
            END IF;
            v_queue.cleanup_limit := absurd.json_seconds(v_value)::integer;
        ELSIF v_key = 'detach_mode' THEN
            v_text := lower(btrim(v_value #>> '{}'));
            IF jsonb_typeof(v_value) <> 'string' OR v_text NOT IN ('none', 'empty') THEN
                RAISE EXCEPTION 'detach_mode must be "none" or "empty"';
            END IF;
            v_queue.detach_mode := v_text;
        ELSIF v_key = 'default_partition' THEN
            IF v_queue.storage_mode <> 'partitioned' THEN
                RAISE EXCEPTION 'default_partition applies to partitioned queues only; queue "%" is %',
                    p_queue_name, v_queue.storage_mode;
            END IF;
            v_text := lower(btrim(v_value #>> '{}'));
            IF jsonb_typeof(v_value) <> 'string' OR v_text NOT IN ('enabled', 'disabled') THEN
                RAISE EXCEPTION 'default_partition must be "enabled" or "disabled"';
            END IF;
            v_queue.default_partition := v_text;
        ELSE
            RAISE EXCEPTION 'Unsupported queue policy key "%"', v_key;
        END IF;
    END LOOP;

    IF v_queue.default_partition = 'disabled' THEN
        PERFORM absurd.drop_default_partitions(p_queue_name);
    END IF;
    UPDATE absurd.queues
    SET default_partition = v_queue.default_partition,
        partition_lookahead = v_queue.partition_lookahead,
        partition_lookback = v_queue.partition_lookback,
        cleanup_ttl = v_queue.cleanup_ttl,
        cleanup_limit = v_queue.cleanup_limit,
        detach_mode = v_queue.detach_mode,
        detach_min_age = v_queue.detach_min_age
    WHERE queue_name = p_queue_name;
    IF v_queue.default_partition = 'enabled' AND v_queue.storage_mode = 'partitioned' THEN
        PERFORM absurd.ensure_partitions(p_queue_name);
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Partitioned storage: a partitioned queue keeps t_, r_, c_ and w_ as weekly partitions
-- over the UUIDv7 keys (t_<q>_401 holds the tasks created in ISO week 1 of a year ending
-- in 4), optionally with DEFAULT partitions (<table>_d) for ids outside every week that
-- exists. Old weeks that are empty can be detached and dropped, by hand or through pg_cron.
-- Creating a partition locks its parent, so these functions create only what is missing
-- and are never run by merely re-applying this file.
-- ---------------------------------------------------------------------------------------

-- For the partitioned queue p_queue_name, or every partitioned queue: the weeks from
-- now - partition_lookback to now + partition_lookahead, and the defaults when enabled.
CREATE OR REPLACE FUNCTION absurd.ensure_partitions(p_queue_name text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_now timestamptz := absurd.current_time();
    v_queue record;
    v_parent text;
    v_child text;
    v_week timestamptz;
    v_last timestamptz;
BEGIN
    IF p_queue_name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM absurd.queues
                       WHERE queue_name = absurd.validate_queue_name(p_queue_name)) THEN
        RAISE EXCEPTION 'Queue "%" does not exist', p_queue_name;
    END IF;
    FOR v_queue IN
        SELECT qs.queue_name, qs.default_partition, qs.partition_lookahead, qs.partition_lookback
        FROM absurd.queues qs
        WHERE qs.storage_mode = 'partitioned'
          AND (p_queue_name IS NULL OR qs.queue_name = p_queue_name)
        ORDER BY qs.queue_name
    LOOP
        FOREACH v_parent IN ARRAY ARRAY['t_', 'r_', 'c_', 'w_'] LOOP
            v_parent := v_parent || v_queue.queue_name;
            IF v_queue.default_partition = 'enabled'
               AND to_regclass(format('absurd.%I', v_parent || '_d')) IS NULL THEN
                EXECUTE format('CREATE TABLE absurd.%I PARTITION OF absurd.%I DEFAULT',
                               v_parent || '_d', v_parent);
            END IF;
            v_week := absurd.week_bucket_utc(v_now - v_queue.partition_lookback);
            v_last := absurd.week_bucket_utc(v_now + v_queue.partition_lookahead);
            WHILE v_week <= v_last LOOP
                v_child := v_parent || '_' || absurd.partition_week_tag(v_week);
                IF to_regclass(format('absurd.%I', v_child)) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE absurd.%I PARTITION OF absurd.%I FOR VALUES FROM (%L) TO (%L)',
                        v_child, v_parent, absurd.uuidv7_floor(v_week),
                        absurd.uuidv7_floor(v_week + interval '7 days'));
                END IF;
                v_week := v_week + interval '7 days';
            END LOOP;
        END LOOP;
    END LOOP;
END;
$$;

-- Detaches and drops the DEFAULT partitions of a partitioned queue, refusing (and
-- changing nothing) while any of them holds rows. Writes to them wait meanwhile.
CREATE OR REPLACE FUNCTION absurd.drop_default_partitions(p_queue_name text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_parent text;
    v_default text;
    v_has_rows boolean;
BEGIN
    FOREACH v_parent IN ARRAY ARRAY['t_', 'r_', 'c_', 'w_'] LOOP
        v_parent := v_parent || p_queue_name;
        v_default := v_parent || '_d';
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM pg_inherits i
            WHERE i.inhrelid = to_regclass(format('absurd.%I', v_default))
              AND i.inhparent = to_regclass(format('absurd.%I', v_parent)));
        EXECUTE format('LOCK TABLE absurd.%I IN ACCESS EXCLUSIVE MODE', v_default);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM absurd.%I)', v_default) INTO v_has_rows;
        IF v_has_rows THEN
            RAISE EXCEPTION 'Cannot disable default_partition for queue "%": default partition "%" is not empty',
                p_queue_name, v_default;
        END IF;
        EXECUTE format('ALTER TABLE absurd.%I DETACH PARTITION absurd.%I', v_parent, v_default);
        EXECUTE format('DROP TABLE absurd.%I', v_default);
    END LOOP;
END;
$$;

-- The upper bound of a weekly partition (its TO value), NULL for a DEFAULT partition.
CREATE OR REPLACE FUNCTION absurd.partition_upper_bound(p_partition regclass)
RETURNS uuid
LANGUAGE sql
STABLE
AS $$
    SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([0-9a-fA-F-]{36})''\)'))[1]::uuid
    FROM pg_class c
    WHERE c.oid = p_partition
$$;

-- The weekly partitions that may go: of queues whose detach_mode is 'empty', those whose
-- week ended more than detach_min_age ago and that hold no rows. Nothing is detached here.
CREATE OR REPLACE FUNCTION absurd.list_detach_candidates(p_queue_name text DEFAULT NULL)
RETURNS TABLE (queue_name text, parent_table text, partition_table text)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := absurd.current_time();
    v_queue record;
    v_part record;
    v_has_rows boolean;
BEGIN
    IF p_queue_name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM absurd.queues
                       WHERE queue_name = absurd.validate_queue_name(p_queue_name)) THEN
        RAISE EXCEPTION 'Queue "%" does not exist', p_queue_name;
    END IF;
    FOR v_queue IN
        SELECT qs.queue_name, qs.detach_min_age
        FROM absurd.queues qs
        WHERE qs.storage_mode = 'partitioned' AND qs.detach_mode = 'empty'
          AND (p_queue_name IS NULL OR qs.queue_name = p_queue_name)
        ORDER BY qs.queue_name
    LOOP
        FOR v_part IN
            SELECT parent.relname AS parent_name, child.relname AS child_name,
                   absurd.uuidv7_timestamp(absurd.partition_upper_bound(child.oid)) AS ends_at
            FROM unnest(ARRAY['t_', 'r_', 'c_', 'w_']) WITH ORDINALITY AS kind (prefix, position)
            JOIN pg_class parent
              ON parent.oid = to_regclass(format('absurd.%I', kind.prefix || v_queue.queue_name))
            JOIN pg_inherits i ON i.inhparent = parent.oid
            JOIN pg_class child ON child.oid = i.inhrelid
            ORDER BY kind.position, 3, child.relname
        LOOP
            CONTINUE WHEN v_part.ends_at IS NULL OR v_part.ends_at >= v_now - v_queue.detach_min_age;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM absurd.%I)', v_part.child_name) INTO v_has_rows;
            CONTINUE WHEN v_has_rows;
            queue_name := v_queue.queue_name;
            parent_table := v_part.parent_name;
            partition_table := v_part.child_name;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$$;

-- NULL when pg_cron's job table and functions are there; otherwise what is missing.
CREATE OR REPLACE FUNCTION absurd.pg_cron_problem()
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT CASE
        WHEN to_regclass('cron.job') IS NULL THEN 'missing cron.job'
        WHEN NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = 'cron' AND p.proname = 'schedule') THEN 'missing cron.schedule'
        WHEN NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = 'cron' AND p.proname = 'unschedule') THEN 'missing cron.unschedule'
    END
$$;

CREATE OR REPLACE FUNCTION absurd.require_pg_cron()
RETURNS void
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_problem text := absurd.pg_cron_problem();
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'pg_cron is not available (%)', v_problem
            USING HINT = 'The pg_cron extension is needed: add it to shared_preload_libraries '
                         'and run CREATE EXTENSION pg_cron in this database.';
    END IF;
END;
$$;

-- Unschedules the pg_cron jobs with these names (quietly: pg_cron may have none).
CREATE OR REPLACE FUNCTION absurd.unschedule_cron_jobs(p_job_names text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_job_id bigint;
BEGIN
    IF to_regclass('cron.job') IS NULL THEN
        RETURN;
    END IF;
    FOR v_job_id IN EXECUTE 'SELECT jobid FROM cron.job WHERE jobname = ANY ($1) ORDER BY jobid'
        USING p_job_names
    LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job_id;
    END LOOP;
END;
$$;

-- Drops a partition once it has been detached (by a DETACH job, or by hand). Returns
-- whether it dropped it; false while still attached, or when it is gone already. With the
-- name of the drop job that calls it (absurd_drop_run_...), that job and its paired detach
-- job are unscheduled once their work is done. Only former partitions of a queue's tables
-- qualify: a queue's own tables and anything else are refused.
CREATE OR REPLACE FUNCTION absurd.drop_detached_partition(
    p_partition_table text,
    p_unschedule_job_name text DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_table text := nullif(btrim(coalesce(p_partition_table, '')), '');
    v_relation regclass;
    v_detach_job text;
BEGIN
    IF v_table IS NULL THEN
        RAISE EXCEPTION 'partition table must be provided';
    END IF;
    IF p_unschedule_job_name LIKE 'absurd\_drop\_run\_%' THEN
        v_detach_job := 'absurd_detach_run_' || substr(p_unschedule_job_name, length('absurd_drop_run_') + 1);
    END IF;
    v_relation := to_regclass(format('absurd.%I', v_table));
    IF v_relation IS NULL THEN
        PERFORM absurd.unschedule_cron_jobs(ARRAY[p_unschedule_job_name, v_detach_job]);
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = v_relation) THEN
        RETURN false;
    END IF;
    IF v_table !~ '^[trcw]_.+_([0-9]{3}|d)$'
       OR EXISTS (SELECT 1 FROM absurd.queues qs
                  WHERE v_table IN ('t_' || qs.queue_name, 'r_' || qs.queue_name, 'c_' || qs.queue_name,
                                    'w_' || qs.queue_name, 'e_' || qs.queue_name, 'i_' || qs.queue_name))
       OR (SELECT relkind FROM pg_class WHERE oid = v_relation) <> 'r' THEN
        RAISE EXCEPTION 'Table "%" is not a detached partition of an Absurd queue', v_table;
    END IF;
    PERFORM absurd.unschedule_cron_jobs(ARRAY[v_detach_job]);
    EXECUTE format('DROP TABLE absurd.%I', v_table);
    PERFORM absurd.unschedule_cron_jobs(ARRAY[p_unschedule_job_name]);
    RETURN true;
END;
$$;

-- The job-name suffix of a queue's pg_cron jobs: 'all', or 12 hex digits naming the queue.
CREATE OR REPLACE FUNCTION absurd.cron_scope(p_queue_name text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN p_queue_name IS NULL THEN 'all' ELSE left(md5(p_queue_name), 12) END
$$;

-- Schedules, per partitioned parent table, one detach job and one drop job (each every
-- minute) for its oldest detach candidate, unless that parent has such a pipeline already.
-- The detach is CONCURRENTLY unless the parent has a DEFAULT partition (which PostgreSQL
-- does not allow); the drop job calls drop_detached_partition until the table is gone.
CREATE OR REPLACE FUNCTION absurd.schedule_detach_jobs(p_queue_name text DEFAULT NULL)
RETURNS TABLE (job_name text, job_id bigint, queue_name text, partition_table text, job_kind text)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_scope text;
    v_candidate record;
    v_parent_key text;
    v_candidate_key text;
    v_busy boolean;
    v_has_default boolean;
    v_command text;
BEGIN
    IF p_queue_name IS NOT NULL THEN
        PERFORM absurd.validate_queue_name(p_queue_name);
    END IF;
    PERFORM absurd.require_pg_cron();
    v_scope := absurd.cron_scope(p_queue_name);
    FOR v_candidate IN
        SELECT DISTINCT ON (c.parent_table) c.queue_name, c.parent_table, c.partition_table
        FROM absurd.list_detach_candidates(p_queue_name) c
        ORDER BY c.parent_table,
                 absurd.uuidv7_timestamp(absurd.partition_upper_bound(
                     to_regclass(format('absurd.%I', c.partition_table)))),
                 c.partition_table
    LOOP
        v_parent_key := left(md5(v_candidate.parent_table), 8);
        EXECUTE $q$SELECT EXISTS (SELECT 1 FROM cron.job
                   WHERE jobname ~ ('^absurd_(detach|drop)_run_[^_]+_' || $1 || '_'))$q$
        INTO v_busy
        USING v_parent_key;
        CONTINUE WHEN v_busy;
        v_candidate_key := left(md5(v_candidate.parent_table || ':' || v_candidate.partition_table), 12);
        SELECT EXISTS (
            SELECT 1 FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(format('absurd.%I', v_candidate.parent_table))
              AND pg_get_expr(child.relpartbound, child.oid) = 'DEFAULT')
        INTO v_has_default;

        v_command := format('ALTER TABLE absurd.%I DETACH PARTITION absurd.%I%s',
                            v_candidate.parent_table, v_candidate.partition_table,
                            CASE WHEN v_has_default THEN '' ELSE ' CONCURRENTLY' END);
        job_name := format('absurd_detach_run_%s_%s_%s', v_scope, v_parent_key, v_candidate_key);
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job_id USING job_name, '* * * * *', v_command;
        queue_name := v_candidate.queue_name;
        partition_table := v_candidate.partition_table;
        job_kind := 'detach';
        RETURN NEXT;

        job_name := format('absurd_drop_run_%s_%s_%s', v_scope, v_parent_key, v_candidate_key);
        v_command := format('SELECT absurd.drop_detached_partition(%L, %L)',
                            v_candidate.partition_table, job_name);
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job_id USING job_name, '* * * * *', v_command;
        job_kind := 'drop';
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Schedules the maintenance of one queue, or of all: partitions ahead
-- (absurd_partitions_<scope>), retention (absurd_cleanup_<scope>) and detach planning
-- (absurd_detach_plan_<scope>). Enabling again replaces the jobs.
CREATE OR REPLACE FUNCTION absurd.enable_cron(
    p_queue_name text DEFAULT NULL,
    p_partition_schedule text DEFAULT '5 * * * *',
    p_cleanup_schedule text DEFAULT '17 * * * *',
    p_detach_schedule text DEFAULT '29 * * * *'
)
RETURNS TABLE (job_name text, job_id bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_scope text;
    v_argument text;
    v_job record;
BEGIN
    IF p_queue_name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM absurd.queues
                       WHERE queue_name = absurd.validate_queue_name(p_queue_name)) THEN
        RAISE EXCEPTION 'Queue "%" does not exist', p_queue_name;
    END IF;
    IF nullif(btrim(p_partition_schedule), '') IS NULL THEN
        RAISE EXCEPTION 'Partition schedule must be provided';
    ELSIF nullif(btrim(p_cleanup_schedule), '') IS NULL THEN
        RAISE EXCEPTION 'Cleanup schedule must be provided';
    ELSIF nullif(btrim(p_detach_schedule), '') IS NULL THEN
        RAISE EXCEPTION 'Detach schedule must be provided';
    END IF;
    PERFORM absurd.require_pg_cron();
    v_scope := absurd.cron_scope(p_queue_name);
    v_argument := coalesce(quote_literal(p_queue_name), 'NULL');
    FOR v_job IN
        SELECT * FROM (VALUES
            (1, 'absurd_partitions_' || v_scope, p_partition_schedule,
             format('SELECT absurd.ensure_partitions(%s)', v_argument)),
            (2, 'absurd_cleanup_' || v_scope, p_cleanup_schedule,
             format('SELECT * FROM absurd.cleanup_all_queues(%s)', v_argument)),
            (3, 'absurd_detach_plan_' || v_scope, p_detach_schedule,
             format('SELECT * FROM absurd.schedule_detach_jobs(%s)', v_argument))
        ) AS jobs (position, name, schedule, command)
        ORDER BY position
    LOOP
        PERFORM absurd.unschedule_cron_jobs(ARRAY[v_job.name]);
        job_name := v_job.name;
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job_id
            USING v_job.name, v_job.schedule, v_job.command;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Unschedules what enable_cron and schedule_detach_jobs scheduled for this scope (one
-- queue, or 'all'), and returns those jobs.
CREATE OR REPLACE FUNCTION absurd.disable_cron(p_queue_name text DEFAULT NULL)
RETURNS TABLE (job_name text, job_id bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_scope text;
    v_job record;
BEGIN
    IF p_queue_name IS NOT NULL THEN
        PERFORM absurd.validate_queue_name(p_queue_name);
    END IF;
    PERFORM absurd.require_pg_cron();
    v_scope := absurd.cron_scope(p_queue_name);
    FOR v_job IN EXECUTE
        $q$SELECT jobid, jobname FROM cron.job
           WHERE jobname IN ('absurd_partitions_' || $1, 'absurd_cleanup_' || $1,
                             'absurd_detach_plan_' || $1)
              OR left(jobname, length('absurd_detach_run_' || $1 || '_')) = 'absurd_detach_run_' || $1 || '_'
              OR left(jobname, length('absurd_drop_run_' || $1 || '_')) = 'absurd_drop_run_' || $1 || '_'
           ORDER BY jobname, jobid$q$
        USING v_scope
    LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job.jobid;
        job_name := v_job.jobname;
        job_id := v_job.jobid;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- The statements whose plans decide how the engine scales. They live in one place so that
-- the engine executes exactly what bench/engine_scale.py and tests/sql EXPLAIN.
-- Parameters are positional and typed in the text, so PREPARE accepts them as they are.
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.engine_query(p_queue_name text, p_query_name text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    t text := 't_' || p_queue_name;
    r text := 'r_' || p_queue_name;
    c text := 'c_' || p_queue_name;
    e text := 'e_' || p_queue_name;
    w text := 'w_' || p_queue_name;
BEGIN
    CASE p_query_name
    -- claim_task step 1. $1 = now. Index: t_<q>_cdi.
    WHEN 'cancel_sweep' THEN
        RETURN format($sql$
            SELECT t.task_id
            FROM absurd.%1$I t
            WHERE t.cancellation IS NOT NULL
              AND t.state IN ('pending', 'sleeping', 'running')
              AND absurd.cancellation_deadline(t.cancellation, t.enqueue_at, t.first_started_at)
                  <= $1::timestamptz$sql$, t);

    -- claim_task step 2. $1 = now, $2 = how many. Index: r_<q>_cei.
    -- Run and task are both taken with SKIP LOCKED, in that order: the sweep never waits.
    WHEN 'lease_sweep' THEN
        RETURN format($sql$
            SELECT r.run_id, r.claimed_by, r.claim_expires_at, r.attempt, r.created_at
            FROM absurd.%1$I r
            JOIN absurd.%2$I t ON t.task_id = r.task_id
            WHERE r.state = 'running'
              AND r.claim_expires_at IS NOT NULL
              AND r.claim_expires_at <= $1::timestamptz
            ORDER BY r.claim_expires_at
            LIMIT $2::integer
            FOR UPDATE OF r, t SKIP LOCKED$sql$, r, t);

    -- claim_task step 3a, the scan. $1 = now, $2 = how many. Index: r_<q>_sai, read in
    -- (available_at, run_id) order and left after $2 rows, then t_<q>_pkey per candidate.
    -- Run then task, both SKIP LOCKED, so claims never wait and never deadlock; a task
    -- locked by a concurrent cancel is simply not claimed this time. An idle poll ends
    -- here: this statement is cheap to plan, the one below is not.
    WHEN 'claim' THEN
        RETURN format($sql$
            SELECT r.run_id, r.available_at
            FROM absurd.%1$I r
            JOIN absurd.%2$I t ON t.task_id = r.task_id
            WHERE r.state IN ('pending', 'sleeping')
              AND r.available_at <= $1::timestamptz
              AND t.state IN ('pending', 'sleeping', 'running')
            ORDER BY r.available_at, r.run_id
            LIMIT $2::integer
            FOR UPDATE OF r, t SKIP LOCKED$sql$, r, t);

    -- claim_task step 3b, on the runs locked by 3a. $1 = now, $2 = run ids in claim order,
    -- $3 = worker id, $4 = lease seconds (0 = no lease). Primary keys only.
    WHEN 'claim_apply' THEN
        RETURN format($sql$
            WITH claimed AS (
                UPDATE absurd.%1$I r
                SET state = 'running',
                    claimed_by = $3::text,
                    claim_expires_at = CASE WHEN $4::integer > 0
                                            THEN $1::timestamptz + make_interval(secs => $4::integer) END,
                    started_at = $1::timestamptz,
                    available_at = $1::timestamptz
                FROM unnest($2::uuid[]) WITH ORDINALITY AS picked (run_id, position)
                WHERE r.run_id = picked.run_id
                RETURNING r.run_id, r.task_id, r.attempt, r.wake_event, r.event_payload, picked.position
            ), task AS (
                -- Returns the whole claimed row, so the result needs no join of two CTEs
                -- (which the planner can only do as a nested loop: quadratic in qty).
                UPDATE absurd.%2$I t
                SET state = 'running',
                    attempts = greatest(t.attempts, claimed.attempt),
                    first_started_at = coalesce(t.first_started_at, $1::timestamptz),
                    last_attempt_run = claimed.run_id
                FROM claimed
                WHERE t.task_id = claimed.task_id
                RETURNING claimed.run_id, t.task_id, claimed.attempt, t.task_name, t.params,
                          t.retry_strategy, t.max_attempts, t.headers,
                          claimed.wake_event, claimed.event_payload, claimed.position
            ), expired_wait AS (
                -- The run wakes because its wait timed out: the wait is over. The run keeps
                -- wake_event, which tells the SDK (and await_event) that it timed out.
                DELETE FROM absurd.%3$I wt
                USING claimed
                WHERE wt.run_id = claimed.run_id
                  AND wt.timeout_at <= $1::timestamptz
            )
            SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
                   headers, wake_event, event_payload
            FROM task
            ORDER BY position$sql$, r, t, w, c);

    -- cleanup_tasks. $1 = cutoff, $2 = limit. Indexes: r_<q>_cai, r_<q>_fai, t_<q>_cai
    -- for the candidates (oldest first, each branch stops at the limit), then r_<q>_ti,
    -- w_<q>_ti and c_<q>_pkey for the rows that go with them. Tasks are locked with
    -- SKIP LOCKED so a concurrent retry_task or a second cleaner is never waited for.
    -- The partitioned variant also releases the idempotency keys (i_<q>_ti).
    WHEN 'cleanup_tasks', 'cleanup_partitioned_tasks' THEN
        RETURN format($sql$
            WITH candidate AS (
                SELECT task_id FROM (
                    (SELECT r.task_id, r.completed_at AS finished_at
                     FROM absurd.%2$I r
                     WHERE r.state = 'completed' AND r.completed_at <= $1::timestamptz
                     ORDER BY r.completed_at
                     LIMIT $2::integer)
                    UNION ALL
                    (SELECT r.task_id, r.failed_at
                     FROM absurd.%2$I r
                     JOIN absurd.%1$I t ON t.task_id = r.task_id
                     WHERE r.state = 'failed' AND r.failed_at <= $1::timestamptz
                       AND t.state = 'failed' AND t.last_attempt_run = r.run_id
                     ORDER BY r.failed_at
                     LIMIT $2::integer)
                    UNION ALL
                    (SELECT t.task_id, t.cancelled_at
                     FROM absurd.%1$I t
                     WHERE t.state = 'cancelled' AND t.cancelled_at <= $1::timestamptz
                     ORDER BY t.cancelled_at
                     LIMIT $2::integer)
                ) finished
                ORDER BY finished_at
                LIMIT $2::integer
            ), doomed AS (
                SELECT t.task_id
                FROM absurd.%1$I t
                WHERE t.task_id IN (SELECT task_id FROM candidate)
                  AND t.state IN ('completed', 'failed', 'cancelled')
                FOR UPDATE OF t SKIP LOCKED
            ), gone_waits AS (
                DELETE FROM absurd.%3$I wt USING doomed WHERE wt.task_id = doomed.task_id
            ), gone_checkpoints AS (
                DELETE FROM absurd.%4$I ck USING doomed WHERE ck.task_id = doomed.task_id
            ), gone_runs AS (
                DELETE FROM absurd.%2$I r USING doomed WHERE r.task_id = doomed.task_id
            ), gone_tasks AS (
                DELETE FROM absurd.%1$I t USING doomed WHERE t.task_id = doomed.task_id
                RETURNING 1
            )%5$s
            SELECT count(*)::integer FROM gone_tasks$sql$, t, r, w, c,
            CASE WHEN p_query_name = 'cleanup_partitioned_tasks' THEN format($keys$, gone_keys AS (
                DELETE FROM absurd.%I k USING doomed WHERE k.task_id = doomed.task_id
            )$keys$, 'i_' || p_queue_name) ELSE '' END);

    -- cleanup_events. $1 = cutoff, $2 = limit. Index: e_<q>_eai, oldest first.
    WHEN 'cleanup_events' THEN
        RETURN format($sql$
            WITH doomed AS (
                SELECT ev.event_name
                FROM absurd.%1$I ev
                WHERE ev.emitted_at <= $1::timestamptz
                ORDER BY ev.emitted_at
                LIMIT $2::integer
                FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM absurd.%1$I ev USING doomed WHERE ev.event_name = doomed.event_name
                RETURNING 1
            )
            SELECT count(*)::integer FROM gone$sql$, e);
    ELSE
        RAISE EXCEPTION 'Unknown engine query "%"', p_query_name;
    END CASE;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Lock order, shared by every function that changes a task:
--   event row (emit/await only)  ->  the task's runs, in run_id order  ->  the task row.
-- A task has at most one live (pending, running or sleeping) run, and its row is only
-- locked by whoever holds that run, so the order cannot form a cycle. claim_task and its
-- sweeps use SKIP LOCKED throughout and never wait at all.
-- ---------------------------------------------------------------------------------------

-- ---------------------------------------------------------------------------------------
-- Size limits: params, headers, event payloads, checkpoint states and results are refused
-- over absurd.max_payload_bytes() bytes of JSON text (one huge row slows every reader of
-- its queue); failure reasons are cut to fit instead, since a failure must always be
-- recorded. absurd-tui's SDK applies the same limit before it sends anything, so this
-- guards other clients. Each public function calls the check on its first line.
-- ---------------------------------------------------------------------------------------

-- 2 MiB unless the setting absurd.max_payload_bytes says otherwise (for instance
-- ALTER DATABASE app SET absurd.max_payload_bytes = 8388608).
CREATE OR REPLACE FUNCTION absurd.max_payload_bytes()
RETURNS bigint
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_setting text := current_setting('absurd.max_payload_bytes', true);
BEGIN
    IF v_setting IS NULL OR btrim(v_setting) = '' THEN
        RETURN 2097152;
    END IF;
    IF btrim(v_setting) !~ '^[0-9]{1,18}$' OR btrim(v_setting)::bigint < 1 THEN
        RAISE EXCEPTION 'absurd.max_payload_bytes must be a whole number of bytes >= 1, not "%"',
            v_setting USING ERRCODE = '22023';
    END IF;
    RETURN btrim(v_setting)::bigint;
END;
$$;

-- SQLSTATE 22001 is PostgreSQL's own "value too long" (a data exception, like bad input).
CREATE OR REPLACE FUNCTION absurd.check_payload_size(p_field text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_limit bigint;
    v_size bigint;
BEGIN
    IF p_value IS NULL THEN
        RETURN;
    END IF;
    v_limit := absurd.max_payload_bytes();
    v_size := octet_length(p_value::text);
    IF v_size > v_limit THEN
        RAISE EXCEPTION '% is % bytes, over the limit of % bytes (absurd.max_payload_bytes)',
            p_field, v_size, v_limit USING ERRCODE = '22001';
    END IF;
END;
$$;

-- A failure reason within the limit: kept as it is, or cut to the start of its message and
-- the end of its traceback with "truncated": true and the original size. What decides the
-- retry ("retryable") is kept.
CREATE OR REPLACE FUNCTION absurd.fit_failure_reason(p_reason jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_limit bigint;
    v_size bigint;
    v_budget integer;
    v_fitted jsonb;
BEGIN
    IF p_reason IS NULL THEN
        RETURN NULL;
    END IF;
    v_limit := absurd.max_payload_bytes();
    v_size := octet_length(p_reason::text);
    IF v_size <= v_limit THEN
        RETURN p_reason;
    END IF;
    -- A JSON escape takes up to 6 bytes per character: stay well inside the limit.
    v_budget := least(greatest(v_limit / 16, 64), 1000000)::integer;
    IF jsonb_typeof(p_reason) = 'object' THEN
        v_fitted := jsonb_strip_nulls(jsonb_build_object(
            'name', left(p_reason ->> 'name', 200),
            'type', left(p_reason ->> 'type', 200),
            'message', left(p_reason ->> 'message', v_budget),
            'traceback', '...(truncated)...' || E'\n' || right(p_reason ->> 'traceback', v_budget),
            'retryable', p_reason -> 'retryable'
        ));
    ELSE
        v_fitted := jsonb_build_object('message', left(p_reason #>> '{}', v_budget));
    END IF;
    v_fitted := v_fitted || jsonb_build_object('truncated', true, 'original_bytes', v_size);
    IF octet_length(v_fitted::text) > v_limit THEN
        v_fitted := jsonb_build_object(
            'message', 'the failure reason could not be stored', 'truncated', true,
            'original_bytes', v_size);
    END IF;
    RETURN v_fitted;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Spawning
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.spawn_task(
    p_queue_name text,
    p_task_name text,
    p_params jsonb,
    p_options jsonb DEFAULT '{}'
)
RETURNS TABLE (task_id uuid, run_id uuid, attempt integer, created boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_options jsonb := coalesce(p_options, '{}'::jsonb);
    v_now timestamptz := absurd.current_time();
    v_headers jsonb;
    v_retry_strategy jsonb;
    v_cancellation jsonb;
    v_max_attempts integer;
    v_key text;
    v_task_id uuid;
    v_run_id uuid;
    v_attempts integer;
    v_tries integer := 0;
    v_keys_table text;
    v_reserved uuid;
BEGIN
    PERFORM absurd.check_payload_size('params', p_params), absurd.check_payload_size('headers', p_options -> 'headers');
    IF p_task_name IS NULL OR btrim(p_task_name) = '' THEN
        RAISE EXCEPTION 'task_name must be provided';
    END IF;
    IF jsonb_typeof(v_options) <> 'object' THEN
        v_options := '{}'::jsonb;
    END IF;

    -- JSON null options mean "not given".
    v_headers := nullif(v_options -> 'headers', 'null'::jsonb);
    v_retry_strategy := nullif(v_options -> 'retry_strategy', 'null'::jsonb);
    v_cancellation := nullif(v_options -> 'cancellation', 'null'::jsonb);
    v_max_attempts := (v_options ->> 'max_attempts')::integer;
    v_key := v_options ->> 'idempotency_key';

    IF v_max_attempts IS NOT NULL AND v_max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be >= 1';
    END IF;
    IF v_retry_strategy IS NOT NULL THEN
        PERFORM absurd.retry_delay_seconds(v_retry_strategy, 1);  -- AB003 when invalid
    END IF;
    -- Upstream casts these to bigint inside every claim, so a bad value breaks claiming
    -- for the whole queue; here it is refused up front instead.
    IF v_cancellation IS NOT NULL THEN
        IF jsonb_typeof(v_cancellation) <> 'object' THEN
            RAISE EXCEPTION 'cancellation must be a JSON object';
        END IF;
        IF nullif(v_cancellation -> 'max_delay', 'null'::jsonb) IS NOT NULL
           AND absurd.json_seconds(v_cancellation -> 'max_delay') IS NULL THEN
            RAISE EXCEPTION 'cancellation.max_delay must be a whole number of seconds';
        END IF;
        IF nullif(v_cancellation -> 'max_duration', 'null'::jsonb) IS NOT NULL
           AND absurd.json_seconds(v_cancellation -> 'max_duration') IS NULL THEN
            RAISE EXCEPTION 'cancellation.max_duration must be a whole number of seconds';
        END IF;
    END IF;

    -- A partitioned queue's keys live in i_<q>: reserve the key there first.
    IF v_key IS NOT NULL
       AND (SELECT storage_mode FROM absurd.queues WHERE queue_name = q) = 'partitioned' THEN
        v_keys_table := 'i_' || q;
    END IF;

    LOOP
        v_task_id := absurd.portable_uuidv7();
        v_run_id := absurd.portable_uuidv7();

        IF v_keys_table IS NOT NULL THEN
            -- A concurrent spawn with the same key waits here for the first to commit.
            EXECUTE format($sql$
                INSERT INTO absurd.%I (idempotency_key, task_id) VALUES ($1, $2)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING task_id$sql$, v_keys_table)
            INTO v_reserved
            USING v_key, v_task_id;
            IF v_reserved IS NULL THEN
                EXECUTE format($sql$
                    SELECT k.task_id, t.last_attempt_run, t.attempts
                    FROM absurd.%I k JOIN absurd.%I t ON t.task_id = k.task_id
                    WHERE k.idempotency_key = $1
                    FOR KEY SHARE OF k$sql$, v_keys_table, 't_' || q)
                INTO v_task_id, v_run_id, v_attempts
                USING v_key;
                IF v_task_id IS NULL THEN
                    RAISE EXCEPTION 'Idempotency key "%" in queue "%" was concurrently cleaned up', v_key, q
                        USING ERRCODE = '40001', HINT = 'Retry spawn_task with the same idempotency key.';
                END IF;
                RETURN QUERY SELECT v_task_id, v_run_id, v_attempts, false;
                RETURN;
            END IF;
        END IF;

        -- Insert-or-nothing on the unique key: a concurrent spawn with the same key waits
        -- for this one to commit and then takes the existing-task branch below. The run is
        -- inserted by the same statement, only when the task was.
        EXECUTE format($sql$
            WITH task AS (
                INSERT INTO absurd.%1$I (task_id, task_name, params, headers, retry_strategy,
                                         max_attempts, cancellation, enqueue_at, state, attempts,
                                         last_attempt_run, idempotency_key)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 1, $9, $10)
                %3$s
                RETURNING task_id
            ), run AS (
                INSERT INTO absurd.%2$I (run_id, task_id, attempt, state, available_at, created_at)
                SELECT $9, task_id, 1, 'pending', $8, $8 FROM task
            )
            SELECT task_id FROM task$sql$, 't_' || q, 'r_' || q,
            -- Partitioned tasks have no unique key (a reserved key cannot conflict).
            CASE WHEN v_keys_table IS NULL AND v_key IS NOT NULL
                 THEN 'ON CONFLICT (idempotency_key) DO NOTHING' ELSE '' END)
        INTO v_task_id
        USING v_task_id, p_task_name, coalesce(p_params, 'null'::jsonb), v_headers,
              v_retry_strategy, v_max_attempts, v_cancellation, v_now, v_run_id, v_key;

        IF v_task_id IS NOT NULL THEN
            PERFORM pg_notify('absurd_ready', q);
            PERFORM pg_notify('absurd_changed', q);
            RETURN QUERY SELECT v_task_id, v_run_id, 1, true;
            RETURN;
        END IF;

        EXECUTE format($sql$
            SELECT task_id, last_attempt_run, attempts
            FROM absurd.%I
            WHERE idempotency_key = $1$sql$, 't_' || q)
        INTO v_task_id, v_run_id, v_attempts
        USING v_key;
        IF v_task_id IS NOT NULL THEN
            RETURN QUERY SELECT v_task_id, v_run_id, v_attempts, false;
            RETURN;
        END IF;
        -- The holder of the key was deleted between our two statements: try again.
        v_tries := v_tries + 1;
        IF v_tries >= 5 THEN
            RAISE EXCEPTION 'Idempotency key "%" keeps changing hands in queue "%"; try again', v_key, q
                USING ERRCODE = '40001';
        END IF;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Failing and cancelling (internal workers shared by the public functions and the sweeps)
-- ---------------------------------------------------------------------------------------

-- Fails a running or sleeping run and decides the retry. Locks the run, then the task.
-- p_queue_position, when given, is where a retry that is due at once queues (its
-- available_at): the lease sweep passes the failed run's creation time, so a task whose
-- worker vanished keeps its place ahead of newer work instead of going to the back.
DROP FUNCTION IF EXISTS absurd.fail_run_at(text, uuid, jsonb, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION absurd.fail_run_at(
    p_queue_name text,
    p_run_id uuid,
    p_reason jsonb,
    p_retry_at timestamptz,
    p_now timestamptz,
    p_queue_position timestamptz DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    t text := 't_' || p_queue_name;
    r text := 'r_' || p_queue_name;
    v_task_id uuid;
    v_attempt integer;
    v_run_state text;
    v_max_attempts integer;
    v_retry_strategy jsonb;
    v_cancellation jsonb;
    v_first_started_at timestamptz;
    v_next_at timestamptz;
    v_max_duration bigint;
    v_new_run uuid;
    v_new_state text;
    v_delay double precision;
BEGIN
    EXECUTE format('SELECT task_id, attempt, state FROM absurd.%I WHERE run_id = $1 FOR UPDATE', r)
    INTO v_task_id, v_attempt, v_run_state
    USING p_run_id;
    IF v_task_id IS NULL THEN
        RAISE EXCEPTION 'Run "%" cannot be failed in queue "%"', p_run_id, p_queue_name;
    ELSIF v_run_state = 'cancelled' THEN
        RAISE EXCEPTION 'Task has been cancelled' USING ERRCODE = 'AB001';
    ELSIF v_run_state = 'failed' THEN
        RAISE EXCEPTION 'Run "%" has already failed in queue "%"', p_run_id, p_queue_name
            USING ERRCODE = 'AB002';
    ELSIF v_run_state NOT IN ('running', 'sleeping') THEN
        RAISE EXCEPTION 'Run "%" cannot be failed in queue "%"', p_run_id, p_queue_name;
    END IF;

    EXECUTE format($sql$
        SELECT max_attempts, retry_strategy, cancellation, first_started_at
        FROM absurd.%I WHERE task_id = $1 FOR UPDATE$sql$, t)
    INTO v_max_attempts, v_retry_strategy, v_cancellation, v_first_started_at
    USING v_task_id;

    -- The lease fields stay: they tell who held the run when it failed.
    EXECUTE format($sql$
        UPDATE absurd.%I
        SET state = 'failed', failed_at = $2, failure_reason = $3, wake_event = NULL
        WHERE run_id = $1$sql$, r)
    USING p_run_id, p_now, p_reason;
    EXECUTE format('DELETE FROM absurd.%I WHERE run_id = $1', 'w_' || p_queue_name)
    USING p_run_id;

    IF p_retry_at IS NOT NULL THEN
        v_delay := 0;
    ELSIF v_retry_strategy IS NOT NULL THEN
        BEGIN
            v_delay := absurd.retry_delay_seconds(v_retry_strategy, v_attempt);
        EXCEPTION
            WHEN SQLSTATE 'AB003' THEN
                -- Stored before strategies were checked and invalid: a retry could never
                -- be planned, so the task fails for good rather than wedge the queue.
                v_delay := NULL;
        END;
    ELSE
        v_delay := 0;
    END IF;

    -- Beyond upstream: a reason saying {"retryable": false} (a handler's permanent error,
    -- such as bad input or a rejected credential) ends the task now, like exhausted
    -- attempts; retry_task can still revive it. Other clients never send the key.
    IF (v_max_attempts IS NOT NULL AND v_attempt + 1 > v_max_attempts)
       OR coalesce(p_reason -> 'retryable' = 'false'::jsonb, false)
       OR v_delay IS NULL THEN
        EXECUTE format($sql$
            UPDATE absurd.%I SET state = 'failed', last_attempt_run = $2 WHERE task_id = $1$sql$, t)
        USING v_task_id, p_run_id;
        PERFORM pg_notify('absurd_changed', p_queue_name);
        RETURN;
    END IF;

    v_next_at := greatest(coalesce(p_retry_at, p_now + make_interval(secs => v_delay)), p_now);

    -- A retry that could only start after max_duration has run out is a cancellation.
    v_max_duration := absurd.json_seconds(v_cancellation -> 'max_duration');
    IF v_max_duration IS NOT NULL AND v_first_started_at IS NOT NULL
       AND v_next_at >= v_first_started_at + make_interval(secs => v_max_duration) THEN
        EXECUTE format($sql$
            UPDATE absurd.%I
            SET state = 'cancelled', cancelled_at = coalesce(cancelled_at, $2)
            WHERE task_id = $1$sql$, t)
        USING v_task_id, p_now;
        PERFORM pg_notify('absurd_changed', p_queue_name);
        RETURN;
    END IF;

    v_new_run := absurd.portable_uuidv7();
    v_new_state := CASE WHEN v_next_at > p_now THEN 'sleeping' ELSE 'pending' END;
    IF v_new_state = 'pending' AND p_queue_position IS NOT NULL THEN
        v_next_at := least(v_next_at, p_queue_position);
    END IF;
    EXECUTE format($sql$
        INSERT INTO absurd.%I (run_id, task_id, attempt, state, available_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $6)$sql$, r)
    USING v_new_run, v_task_id, v_attempt + 1, v_new_state, v_next_at, p_now;
    EXECUTE format($sql$
        UPDATE absurd.%I
        SET state = $2, last_attempt_run = $3, attempts = greatest(attempts, $4)
        WHERE task_id = $1$sql$, t)
    USING v_task_id, v_new_state, v_new_run, v_attempt + 1;

    IF v_new_state = 'pending' THEN
        PERFORM pg_notify('absurd_ready', p_queue_name);
    END IF;
    PERFORM pg_notify('absurd_changed', p_queue_name);
END;
$$;

-- Cancels a task: its live runs (run_id order), then the task row. Returns true when it
-- cancelled. p_from_sweep is the claim-time policy sweep: it never waits (returns false
-- when anything it needs is locked, leaving the task to a later sweep) and re-checks the
-- policy under the lock, since a concurrent claim may have started the task meanwhile.
CREATE OR REPLACE FUNCTION absurd.cancel_task_at(
    p_queue_name text,
    p_task_id uuid,
    p_now timestamptz,
    p_from_sweep boolean
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    t text := 't_' || p_queue_name;
    r text := 'r_' || p_queue_name;
    v_wait_policy text := CASE WHEN p_from_sweep THEN 'SKIP LOCKED' ELSE '' END;
    v_locked uuid[];
    v_late uuid[];
    v_late_locked uuid[];
    v_state text;
    v_deadline timestamptz;
BEGIN
    EXECUTE format($sql$
        SELECT coalesce(array_agg(run_id), '{}') FROM (
            SELECT run_id FROM absurd.%I
            WHERE task_id = $1 AND state IN ('pending', 'running', 'sleeping')
            ORDER BY run_id
            FOR UPDATE %s
        ) live$sql$, r, v_wait_policy)
    INTO v_locked
    USING p_task_id;

    EXECUTE format($sql$
        SELECT state, absurd.cancellation_deadline(cancellation, enqueue_at, first_started_at)
        FROM absurd.%I WHERE task_id = $1 FOR UPDATE %s$sql$, t, v_wait_policy)
    INTO v_state, v_deadline
    USING p_task_id;
    IF v_state IS NULL THEN
        IF p_from_sweep THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'Task "%" not found in queue "%"', p_task_id, p_queue_name;
    END IF;
    IF v_state IN ('completed', 'failed', 'cancelled')
       OR (p_from_sweep AND NOT coalesce(v_deadline <= p_now, false)) THEN
        RETURN false;
    END IF;

    -- Live runs we do not hold yet: skipped above, or created by a fail_run/retry_task
    -- that committed between the two statements. The task lock we hold now stops new
    -- ones; take these without waiting, since their holder may be waiting for our task.
    EXECUTE format($sql$
        SELECT coalesce(array_agg(run_id), '{}') FROM absurd.%I
        WHERE task_id = $1 AND state IN ('pending', 'running', 'sleeping')
          AND NOT (run_id = ANY ($2))$sql$, r)
    INTO v_late
    USING p_task_id, v_locked;
    IF cardinality(v_late) > 0 THEN
        EXECUTE format($sql$
            SELECT coalesce(array_agg(run_id), '{}') FROM (
                SELECT run_id FROM absurd.%I WHERE run_id = ANY ($1)
                ORDER BY run_id FOR UPDATE SKIP LOCKED
            ) late$sql$, r)
        INTO v_late_locked
        USING v_late;
        IF cardinality(v_late_locked) < cardinality(v_late) THEN
            IF p_from_sweep THEN
                RETURN false;
            END IF;
            RAISE EXCEPTION 'Task "%" in queue "%" changed while being cancelled; try again',
                p_task_id, p_queue_name
                USING ERRCODE = '40001';
        END IF;
    END IF;

    EXECUTE format($sql$
        UPDATE absurd.%I
        SET state = 'cancelled', cancelled_at = coalesce(cancelled_at, $2)
        WHERE task_id = $1$sql$, t)
    USING p_task_id, p_now;
    EXECUTE format($sql$
        UPDATE absurd.%I
        SET state = 'cancelled', claim_expires_at = NULL
        WHERE task_id = $1 AND state IN ('pending', 'running', 'sleeping')$sql$, r)
    USING p_task_id;
    EXECUTE format('DELETE FROM absurd.%I WHERE task_id = $1', 'w_' || p_queue_name)
    USING p_task_id;
    PERFORM pg_notify('absurd_changed', p_queue_name);
    RETURN true;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Claiming and the run life cycle
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.claim_task(
    p_queue_name text,
    p_worker_id text,
    p_claim_timeout integer DEFAULT 30,
    p_qty integer DEFAULT 1
)
RETURNS TABLE (
    run_id uuid,
    task_id uuid,
    attempt integer,
    task_name text,
    params jsonb,
    retry_strategy jsonb,
    max_attempts integer,
    headers jsonb,
    wake_event text,
    event_payload jsonb
)
LANGUAGE plpgsql
-- The claim must read r_<q>_sai in order and stop after qty rows. With few rows expected
-- (fresh statistics, or none at all) the planner would rather bitmap-scan every claimable
-- run and sort them: correct, but its cost grows with the backlog, and bitmap scans never
-- mark dead index entries, so without vacuum every poll would revisit them. JIT never pays
-- for statements this small, and a stale row estimate must not switch it on.
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_timeout integer := greatest(coalesce(p_claim_timeout, 30), 0);
    v_qty integer := greatest(coalesce(p_qty, 1), 1);
    v_worker text := coalesce(nullif(p_worker_id, ''), 'worker');
    v_overdue uuid[];
    v_task uuid;
    v_expired jsonb;
    v_run jsonb;
    v_runs uuid[];
BEGIN
    -- Both sweeps collect their rows before acting on them, so that no open cursor
    -- scans rows the actions are rewriting.

    -- 1. Cancellation policies: every live task whose deadline has passed.
    EXECUTE format('SELECT coalesce(array_agg(task_id), ''{}'') FROM (%s) overdue',
                   absurd.engine_query(q, 'cancel_sweep'))
    INTO v_overdue
    USING v_now;
    FOREACH v_task IN ARRAY v_overdue LOOP
        PERFORM absurd.cancel_task_at(q, v_task, v_now, true);
    END LOOP;

    -- 2. Expired leases, at most as many as we claim: fail them through the normal
    --    retry path.
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(expired)), ''[]'') FROM (%s) expired',
                   absurd.engine_query(q, 'lease_sweep'))
    INTO v_expired
    USING v_now, v_qty;
    FOR v_run IN SELECT value FROM jsonb_array_elements(v_expired) LOOP
        PERFORM absurd.fail_run_at(
            q, (v_run ->> 'run_id')::uuid,
            jsonb_strip_nulls(jsonb_build_object(
                'name', '$ClaimTimeout',
                'message', 'worker did not finish task within claim interval',
                'workerId', v_run -> 'claimed_by',
                'claimExpiredAt', v_run -> 'claim_expires_at',
                'attempt', v_run -> 'attempt')),
            NULL, v_now, (v_run ->> 'created_at')::timestamptz);
    END LOOP;

    -- 3. Claim: lock the candidates, then take them.
    EXECUTE format('SELECT array_agg(run_id ORDER BY available_at, run_id) FROM (%s) candidate',
                   absurd.engine_query(q, 'claim'))
    INTO v_runs
    USING v_now, v_qty;
    IF v_runs IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE absurd.engine_query(q, 'claim_apply') USING v_now, v_runs, v_worker, v_timeout;
    PERFORM pg_notify('absurd_changed', q);
END;
$$;

CREATE OR REPLACE FUNCTION absurd.complete_run(p_queue_name text, p_run_id uuid, p_state jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_task_id uuid;
    v_state text;
BEGIN
    PERFORM absurd.check_payload_size('result', p_state);
    -- One statement on the normal path. Its first action is the run's UPDATE (the only
    -- CTE the outer query reads), which locks the run before the task: the usual order.
    EXECUTE format($sql$
        WITH run AS (
            UPDATE absurd.%1$I SET state = 'completed', completed_at = $2, result = $3
            WHERE run_id = $1 AND state = 'running'
            RETURNING task_id
        ), task AS (
            UPDATE absurd.%2$I t SET state = 'completed', completed_payload = $3, last_attempt_run = $1
            FROM run WHERE t.task_id = run.task_id
        ), waits AS (
            DELETE FROM absurd.%3$I WHERE run_id = $1 AND EXISTS (SELECT 1 FROM run)
        )
        SELECT task_id FROM run$sql$, 'r_' || q, 't_' || q, 'w_' || q)
    INTO v_task_id
    USING p_run_id, v_now, p_state;
    IF v_task_id IS NOT NULL THEN
        PERFORM pg_notify('absurd_changed', q);
        RETURN;
    END IF;

    -- The run is not running: say why.
    EXECUTE format('SELECT state FROM absurd.%I WHERE run_id = $1', 'r_' || q)
    INTO v_state
    USING p_run_id;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found in queue "%"', p_run_id, q;
    ELSIF v_state = 'cancelled' THEN
        RAISE EXCEPTION 'Task has been cancelled' USING ERRCODE = 'AB001';
    ELSIF v_state = 'failed' THEN
        RAISE EXCEPTION 'Run "%" has already failed in queue "%"', p_run_id, q USING ERRCODE = 'AB002';
    END IF;
    RAISE EXCEPTION 'Run "%" is not currently running in queue "%"', p_run_id, q;
END;
$$;

CREATE OR REPLACE FUNCTION absurd.fail_run(
    p_queue_name text,
    p_run_id uuid,
    p_reason jsonb,
    p_retry_at timestamptz DEFAULT NULL
)
RETURNS void
LANGUAGE sql
AS $$
    SELECT absurd.fail_run_at(absurd.validate_queue_name(p_queue_name), p_run_id,
                              absurd.fit_failure_reason(p_reason), p_retry_at, absurd.current_time())
$$;

-- Puts a running run to sleep until p_wake_at (sleeps, and the SDK's deferral of task
-- names it does not know). The attempt is unchanged.
CREATE OR REPLACE FUNCTION absurd.schedule_run(p_queue_name text, p_run_id uuid, p_wake_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_task_id uuid;
    v_state text;
BEGIN
    EXECUTE format('SELECT task_id, state FROM absurd.%I WHERE run_id = $1 FOR UPDATE', 'r_' || q)
    INTO v_task_id, v_state
    USING p_run_id;
    IF v_state IS DISTINCT FROM 'running' THEN
        RAISE EXCEPTION 'Run "%" is not currently running in queue "%"', p_run_id, q;
    END IF;

    EXECUTE format($sql$
        WITH run AS (
            UPDATE absurd.%1$I
            SET state = 'sleeping', claimed_by = NULL, claim_expires_at = NULL,
                available_at = $2, wake_event = NULL
            WHERE run_id = $1
        )
        UPDATE absurd.%2$I SET state = 'sleeping' WHERE task_id = $3$sql$, 'r_' || q, 't_' || q)
    USING p_run_id, p_wake_at, v_task_id;

    IF p_wake_at <= v_now THEN
        PERFORM pg_notify('absurd_ready', q);
    END IF;
    PERFORM pg_notify('absurd_changed', q);
END;
$$;

-- Upstream declares the seconds of extend_claim and await_event as integer; these take
-- double precision (integers still resolve to them, and fractions work). An older
-- integer version would stay beside the new one as an overload, so it goes first.
DROP FUNCTION IF EXISTS absurd.extend_claim(text, uuid, integer);
DROP FUNCTION IF EXISTS absurd.await_event(text, uuid, uuid, text, text, integer);
-- Revision 1's await_event, without p_durable_timeout.
DROP FUNCTION IF EXISTS absurd.await_event(text, uuid, uuid, text, text, double precision);

CREATE OR REPLACE FUNCTION absurd.extend_claim(p_queue_name text, p_run_id uuid, p_extend_by double precision)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_run_state text;
    v_task_state text;
    v_expires_at timestamptz;
BEGIN
    IF p_extend_by IS NULL OR p_extend_by <= 0 THEN
        RAISE EXCEPTION 'extend_by must be > 0';
    END IF;
    EXECUTE format($sql$
        SELECT r.state, t.state, r.claim_expires_at
        FROM absurd.%I r JOIN absurd.%I t ON t.task_id = r.task_id
        WHERE r.run_id = $1
        FOR UPDATE OF r$sql$, 'r_' || q, 't_' || q)
    INTO v_run_state, v_task_state, v_expires_at
    USING p_run_id;
    IF v_run_state IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found in queue "%"', p_run_id, q;
    ELSIF v_task_state = 'cancelled' OR v_run_state = 'cancelled' THEN
        RAISE EXCEPTION 'Task has been cancelled' USING ERRCODE = 'AB001';
    ELSIF v_run_state = 'failed' THEN
        RAISE EXCEPTION 'Run "%" has already failed in queue "%"', p_run_id, q USING ERRCODE = 'AB002';
    ELSIF v_run_state <> 'running' THEN
        RAISE EXCEPTION 'Run "%" is not currently running in queue "%"', p_run_id, q;
    ELSIF v_expires_at IS NULL THEN
        RAISE EXCEPTION 'Run "%" does not have an active claim in queue "%"', p_run_id, q;
    END IF;

    EXECUTE format('UPDATE absurd.%I SET claim_expires_at = $2 WHERE run_id = $1', 'r_' || q)
    USING p_run_id, v_now + make_interval(secs => p_extend_by);
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Checkpoints
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.set_task_checkpoint_state(
    p_queue_name text,
    p_task_id uuid,
    p_step_name text,
    p_state jsonb,
    p_owner_run uuid,
    p_extend_claim_by integer DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_written boolean;
    v_run_state text;
    v_task_state text;
BEGIN
    PERFORM absurd.check_payload_size(format('the state of checkpoint "%s"', p_step_name), p_state);
    IF p_step_name IS NULL OR p_step_name = '' THEN
        RAISE EXCEPTION 'step_name must be provided';
    END IF;

    -- One statement on the normal path: lock the writing run, renew its lease, and write
    -- unless a later attempt already owns this step (after a lease expiry the old attempt
    -- may still be running, and must not overwrite the new one). The run need not be
    -- running.
    EXECUTE format($sql$
        WITH owner AS (
            -- A cancelled task's live runs are cancelled with it, so the run's own state
            -- tells whether to write; refusals are sorted out below.
            SELECT r.run_id, r.attempt
            FROM absurd.%1$I r
            WHERE r.run_id = $4 AND r.task_id = $1
              AND r.state NOT IN ('failed', 'cancelled')
            FOR UPDATE
        ), lease AS (
            UPDATE absurd.%1$I r
            SET claim_expires_at = $5 + make_interval(secs => $6)
            FROM owner
            WHERE r.run_id = owner.run_id
              AND $6 > 0 AND r.state = 'running' AND r.claim_expires_at IS NOT NULL
        ), written AS (
            INSERT INTO absurd.%2$I AS ck (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
            SELECT $1, $2, $3, 'committed', owner.run_id, $5 FROM owner
            ON CONFLICT (task_id, checkpoint_name) DO UPDATE
            SET state = EXCLUDED.state, status = EXCLUDED.status,
                owner_run_id = EXCLUDED.owner_run_id, updated_at = EXCLUDED.updated_at
            WHERE NOT EXISTS (
                SELECT 1 FROM absurd.%1$I o
                WHERE o.run_id = ck.owner_run_id AND o.attempt > (SELECT attempt FROM owner)
            )
        )
        SELECT true FROM owner$sql$, 'r_' || q, 'c_' || q)
    INTO v_written
    USING p_task_id, p_step_name, p_state, p_owner_run, absurd.current_time(),
          coalesce(p_extend_claim_by, 0);
    IF v_written THEN
        RETURN;
    END IF;

    -- Nothing written: say why.
    EXECUTE format($sql$
        SELECT r.state, t.state
        FROM absurd.%I r JOIN absurd.%I t ON t.task_id = r.task_id
        WHERE r.run_id = $1 AND r.task_id = $2$sql$, 'r_' || q, 't_' || q)
    INTO v_run_state, v_task_state
    USING p_owner_run, p_task_id;
    IF v_run_state IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found for checkpoint', p_owner_run;
    ELSIF v_task_state = 'cancelled' OR v_run_state = 'cancelled' THEN
        RAISE EXCEPTION 'Task has been cancelled' USING ERRCODE = 'AB001';
    END IF;
    RAISE EXCEPTION 'Run "%" has already failed in queue "%"', p_owner_run, q USING ERRCODE = 'AB002';
END;
$$;

CREATE OR REPLACE FUNCTION absurd.get_task_checkpoint_state(
    p_queue_name text,
    p_task_id uuid,
    p_step_name text,
    p_include_pending boolean DEFAULT false
)
RETURNS TABLE (checkpoint_name text, state jsonb, status text, owner_run_id uuid, updated_at timestamptz)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    RETURN QUERY EXECUTE format($sql$
        SELECT ck.checkpoint_name, ck.state, ck.status, ck.owner_run_id, ck.updated_at
        FROM absurd.%I ck
        WHERE ck.task_id = $1 AND ck.checkpoint_name = $2
          AND ($3 OR ck.status = 'committed')$sql$, 'c_' || absurd.validate_queue_name(p_queue_name))
    USING p_task_id, p_step_name, coalesce(p_include_pending, false);
END;
$$;

-- The replay cache of one run: committed checkpoints not owned by a later attempt.
CREATE OR REPLACE FUNCTION absurd.get_task_checkpoint_states(p_queue_name text, p_task_id uuid, p_run_id uuid)
RETURNS TABLE (checkpoint_name text, state jsonb, status text, owner_run_id uuid, updated_at timestamptz)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_run_task uuid;
    v_attempt integer;
BEGIN
    EXECUTE format('SELECT task_id, attempt FROM absurd.%I WHERE run_id = $1', 'r_' || q)
    INTO v_run_task, v_attempt
    USING p_run_id;
    IF v_run_task IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found in queue "%"', p_run_id, q;
    ELSIF v_run_task <> p_task_id THEN
        RAISE EXCEPTION 'Run "%" does not belong to task "%" in queue "%"', p_run_id, p_task_id, q;
    END IF;

    RETURN QUERY EXECUTE format($sql$
        SELECT ck.checkpoint_name, ck.state, ck.status, ck.owner_run_id, ck.updated_at
        FROM absurd.%I ck
        LEFT JOIN absurd.%I o ON o.run_id = ck.owner_run_id
        WHERE ck.task_id = $1
          AND ck.status = 'committed'
          AND (o.run_id IS NULL OR o.attempt <= $2)
        ORDER BY ck.updated_at, ck.checkpoint_name$sql$, 'c_' || q, 'r_' || q)
    USING p_task_id, v_attempt;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.await_event(
    p_queue_name text,
    p_task_id uuid,
    p_run_id uuid,
    p_step_name text,
    p_event_name text,
    p_timeout double precision DEFAULT NULL,
    p_durable_timeout boolean DEFAULT false
)
RETURNS TABLE (should_suspend boolean, payload jsonb, timed_out boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    t text := 't_' || q;
    r text := 'r_' || q;
    c text := 'c_' || q;
    e text := 'e_' || q;
    w text := 'w_' || q;
    v_now timestamptz := absurd.current_time();
    v_found boolean;
    v_checkpoint_state jsonb;
    v_checkpoint_status text;
    v_event_payload jsonb;
    v_run_state text;
    v_task_state text;
    v_wake_event text;
    v_delivered jsonb;
    v_resolved boolean := false;
    v_result jsonb;
    v_timeout_at timestamptz;
BEGIN
    IF p_event_name IS NULL OR p_event_name = '' THEN
        RAISE EXCEPTION 'event_name must be provided';
    END IF;
    IF p_step_name IS NULL OR p_step_name = '' THEN
        RAISE EXCEPTION 'step_name must be provided';
    END IF;
    IF p_timeout < 0 THEN
        RAISE EXCEPTION 'timeout must be non-negative';
    END IF;

    -- 1. The step already has an outcome: a payload, or (for a durable caller only) a
    --    recorded timeout. Upstream has no such records, so other callers do not see them.
    EXECUTE format($sql$
        SELECT true, state, status FROM absurd.%I WHERE task_id = $1 AND checkpoint_name = $2$sql$, c)
    INTO v_found, v_checkpoint_state, v_checkpoint_status
    USING p_task_id, p_step_name;
    IF v_found AND (v_checkpoint_status <> 'timed_out' OR coalesce(p_durable_timeout, false)) THEN
        RETURN QUERY SELECT false, v_checkpoint_state, v_checkpoint_status = 'timed_out';
        RETURN;
    END IF;

    -- 2. Lock order: the event row (shared, so emit waits for us), then the run.
    EXECUTE format($sql$
        INSERT INTO absurd.%I (event_name, payload, emitted_at) VALUES ($1, NULL, 'epoch')
        ON CONFLICT (event_name) DO NOTHING$sql$, e)
    USING p_event_name;
    EXECUTE format('SELECT payload FROM absurd.%I WHERE event_name = $1 FOR SHARE', e)
    INTO v_event_payload
    USING p_event_name;

    EXECUTE format($sql$
        SELECT r.state, t.state, r.wake_event, r.event_payload
        FROM absurd.%I r JOIN absurd.%I t ON t.task_id = r.task_id
        WHERE r.run_id = $1 AND r.task_id = $2
        FOR UPDATE OF r$sql$, r, t)
    INTO v_run_state, v_task_state, v_wake_event, v_delivered
    USING p_run_id, p_task_id;

    -- 3.
    IF v_run_state IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found while awaiting event', p_run_id;
    ELSIF v_task_state = 'cancelled' OR v_run_state = 'cancelled' THEN
        RAISE EXCEPTION 'Task has been cancelled' USING ERRCODE = 'AB001';
    END IF;

    -- 4. A payload delivered to this run by emit_event is consumed here.
    IF v_delivered IS NOT NULL THEN
        EXECUTE format('UPDATE absurd.%I SET event_payload = NULL WHERE run_id = $1', r)
        USING p_run_id;
        IF v_delivered = v_event_payload THEN
            v_resolved := true;
            v_result := v_delivered;
        END IF;
    END IF;

    -- 5.
    IF v_run_state <> 'running' THEN
        RAISE EXCEPTION 'Run "%" must be running to await events', p_run_id;
    END IF;

    -- 6. For a durable caller a timeout (step 8) wins over an emit that came too late.
    IF NOT v_resolved AND v_event_payload IS NOT NULL
       AND NOT (coalesce(p_durable_timeout, false)
                AND v_wake_event IS NOT DISTINCT FROM p_event_name AND v_delivered IS NULL) THEN
        v_resolved := true;
        v_result := v_event_payload;
    END IF;

    -- 7. Resolved: the payload becomes the step's checkpoint.
    IF v_resolved THEN
        EXECUTE format($sql$
            INSERT INTO absurd.%I (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
            VALUES ($1, $2, $3, 'committed', $4, $5)
            ON CONFLICT (task_id, checkpoint_name) DO UPDATE
            SET state = EXCLUDED.state, status = EXCLUDED.status,
                owner_run_id = EXCLUDED.owner_run_id, updated_at = EXCLUDED.updated_at$sql$, c)
        USING p_task_id, p_step_name, v_result, p_run_id, v_now;
        RETURN QUERY SELECT false, v_result, false;
        RETURN;
    END IF;

    -- 8. The run woke from a timed-out wait on this event, and this is the first await of
    --    the event since: it is the one that timed out. Clearing wake_event means a later
    --    await of the same event waits afresh. A durable caller gets the timeout recorded
    --    on the step, so that its replays time out again instead of waiting.
    IF v_wake_event = p_event_name AND v_delivered IS NULL THEN
        EXECUTE format('UPDATE absurd.%I SET wake_event = NULL WHERE run_id = $1', r)
        USING p_run_id;
        IF coalesce(p_durable_timeout, false) THEN
            EXECUTE format($sql$
                INSERT INTO absurd.%I AS ck (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
                VALUES ($1, $2, NULL, 'timed_out', $3, $4)
                ON CONFLICT (task_id, checkpoint_name) DO UPDATE
                SET state = NULL, status = 'timed_out', owner_run_id = EXCLUDED.owner_run_id,
                    updated_at = EXCLUDED.updated_at$sql$, c)
            USING p_task_id, p_step_name, p_run_id, v_now;
        END IF;
        RETURN QUERY SELECT false, NULL::jsonb, true;
        RETURN;
    END IF;

    -- 9. Suspend until the event arrives or the timeout passes.
    v_timeout_at := v_now + make_interval(secs => p_timeout);
    EXECUTE format($sql$
        WITH wait AS (
            INSERT INTO absurd.%1$I (run_id, step_name, task_id, event_name, timeout_at, created_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (run_id, step_name) DO UPDATE
            SET event_name = EXCLUDED.event_name, timeout_at = EXCLUDED.timeout_at,
                created_at = EXCLUDED.created_at
        ), run AS (
            UPDATE absurd.%2$I
            SET state = 'sleeping', claimed_by = NULL, claim_expires_at = NULL,
                available_at = coalesce($5, 'infinity'), wake_event = $4, event_payload = NULL
            WHERE run_id = $1
        )
        UPDATE absurd.%3$I SET state = 'sleeping' WHERE task_id = $3$sql$, w, r, t)
    USING p_run_id, p_step_name, p_task_id, p_event_name, v_timeout_at, v_now;
    PERFORM pg_notify('absurd_changed', q);
    RETURN QUERY SELECT true, NULL::jsonb, false;
END;
$$;

-- First write wins: a second emit of the same name changes nothing and wakes nobody.
CREATE OR REPLACE FUNCTION absurd.emit_event(p_queue_name text, p_event_name text, p_payload jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_payload jsonb := coalesce(p_payload, 'null'::jsonb);
    v_applied boolean;
    v_woken integer;
BEGIN
    PERFORM absurd.check_payload_size('payload', p_payload);
    IF p_event_name IS NULL OR p_event_name = '' THEN
        RAISE EXCEPTION 'event_name must be provided';
    END IF;

    -- Takes the event row's lock: waits for any await_event holding it in share mode.
    EXECUTE format($sql$
        INSERT INTO absurd.%1$I AS ev (event_name, payload, emitted_at) VALUES ($1, $2, $3)
        ON CONFLICT (event_name) DO UPDATE
        SET payload = EXCLUDED.payload, emitted_at = EXCLUDED.emitted_at
        WHERE ev.payload IS NULL
        RETURNING true$sql$, 'e_' || q)
    INTO v_applied
    USING p_event_name, v_payload, v_now;
    IF v_applied IS NULL THEN
        RETURN;
    END IF;

    -- Then the waiting runs, in run_id order (the order cancel_task uses).
    EXECUTE format($sql$
        SELECT count(*) FROM (
            SELECT r.run_id
            FROM absurd.%I wt JOIN absurd.%I r ON r.run_id = wt.run_id
            WHERE wt.event_name = $1 AND r.state = 'sleeping'
            ORDER BY r.run_id
            FOR UPDATE OF r
        ) locked$sql$, 'w_' || q, 'r_' || q)
    USING p_event_name;

    EXECUTE format($sql$
        WITH expired_wait AS (
            -- Waits whose timeout has passed do not get the payload: they timed out, and
            -- their runs wake when claimed, as timed out.
            DELETE FROM absurd.%1$I wt
            WHERE wt.event_name = $1 AND wt.timeout_at <= $3
        ), waiter AS (
            SELECT wt.run_id, wt.task_id, wt.step_name
            FROM absurd.%1$I wt
            WHERE wt.event_name = $1 AND (wt.timeout_at IS NULL OR wt.timeout_at > $3)
        ), woken AS (
            UPDATE absurd.%2$I r
            SET state = 'pending', available_at = $3, wake_event = NULL, event_payload = $2,
                claimed_by = NULL, claim_expires_at = NULL
            FROM waiter
            WHERE r.run_id = waiter.run_id AND r.state = 'sleeping'
            RETURNING r.run_id, r.task_id
        ), delivered AS (
            INSERT INTO absurd.%3$I AS ck (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
            SELECT waiter.task_id, waiter.step_name, $2, 'committed', waiter.run_id, $3
            FROM waiter JOIN woken ON woken.run_id = waiter.run_id
            ON CONFLICT (task_id, checkpoint_name) DO UPDATE
            SET state = EXCLUDED.state, status = EXCLUDED.status,
                owner_run_id = EXCLUDED.owner_run_id, updated_at = EXCLUDED.updated_at
        ), task AS (
            UPDATE absurd.%4$I t SET state = 'pending'
            FROM woken WHERE t.task_id = woken.task_id
        ), gone AS (
            DELETE FROM absurd.%1$I wt USING woken
            WHERE wt.run_id = woken.run_id AND wt.event_name = $1
        )
        SELECT count(*)::integer FROM woken$sql$, 'w_' || q, 'r_' || q, 'c_' || q, 't_' || q)
    INTO v_woken
    USING p_event_name, v_payload, v_now;

    IF v_woken > 0 THEN
        PERFORM pg_notify('absurd_ready', q);
    END IF;
    PERFORM pg_notify('absurd_changed', q);
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Task control and results
-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION absurd.cancel_task(p_queue_name text, p_task_id uuid)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM absurd.cancel_task_at(absurd.validate_queue_name(p_queue_name), p_task_id,
                                  absurd.current_time(), false);
END;
$$;

CREATE OR REPLACE FUNCTION absurd.retry_task(p_queue_name text, p_task_id uuid, p_options jsonb DEFAULT '{}')
RETURNS TABLE (task_id uuid, run_id uuid, attempt integer, created boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_options jsonb := coalesce(p_options, '{}'::jsonb);
    v_now timestamptz := absurd.current_time();
    v_override integer := (v_options ->> 'max_attempts')::integer;
    v_task record;
    v_max_attempts integer;
    v_run_id uuid;
BEGIN
    IF v_override IS NOT NULL AND v_override < 1 THEN
        RAISE EXCEPTION 'max_attempts must be >= 1';
    END IF;
    -- A failed task has no live run, so locking the task first keeps the lock order.
    EXECUTE format($sql$
        SELECT task_name, params, headers, retry_strategy, cancellation, max_attempts, attempts, state
        FROM absurd.%I WHERE task_id = $1 FOR UPDATE$sql$, 't_' || q)
    INTO v_task
    USING p_task_id;
    IF v_task.state IS NULL THEN
        RAISE EXCEPTION 'Task "%" not found in queue "%"', p_task_id, q;
    ELSIF v_task.state <> 'failed' THEN
        RAISE EXCEPTION 'Task "%" is not currently failed in queue "%"', p_task_id, q;
    END IF;

    IF coalesce((v_options ->> 'spawn_new')::boolean, false) THEN
        -- SQL NULLs become JSON nulls here, which spawn_task reads as "not given".
        RETURN QUERY SELECT * FROM absurd.spawn_task(q, v_task.task_name, v_task.params,
            jsonb_build_object(
                'headers', v_task.headers,
                'retry_strategy', v_task.retry_strategy,
                'cancellation', v_task.cancellation,
                'max_attempts', coalesce(v_override, v_task.max_attempts)));
        RETURN;
    END IF;

    v_max_attempts := coalesce(v_override, coalesce(v_task.max_attempts, v_task.attempts) + 1);
    IF v_max_attempts <= v_task.attempts THEN
        RAISE EXCEPTION 'max_attempts (%) must be greater than current attempts (%)',
            v_max_attempts, v_task.attempts;
    END IF;

    v_run_id := absurd.portable_uuidv7();
    EXECUTE format($sql$
        WITH run AS (
            INSERT INTO absurd.%1$I (run_id, task_id, attempt, state, available_at, created_at)
            VALUES ($2, $1, $3, 'pending', $4, $4)
        )
        UPDATE absurd.%2$I
        SET state = 'pending', max_attempts = $5, attempts = $3, last_attempt_run = $2,
            cancelled_at = NULL
        WHERE task_id = $1$sql$, 'r_' || q, 't_' || q)
    USING p_task_id, v_run_id, v_task.attempts + 1, v_now, v_max_attempts;
    PERFORM pg_notify('absurd_ready', q);
    PERFORM pg_notify('absurd_changed', q);
    RETURN QUERY SELECT p_task_id, v_run_id, v_task.attempts + 1, false;
END;
$$;

CREATE OR REPLACE FUNCTION absurd.get_task_result(p_queue_name text, p_task_id uuid)
RETURNS TABLE (task_id uuid, state text, result jsonb, failure_reason jsonb)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
BEGIN
    RETURN QUERY EXECUTE format($sql$
        SELECT t.task_id, t.state,
               CASE WHEN t.state = 'completed' THEN t.completed_payload END,
               CASE WHEN t.state = 'failed' THEN r.failure_reason END
        FROM absurd.%I t
        LEFT JOIN absurd.%I r ON r.run_id = t.last_attempt_run
        WHERE t.task_id = $1$sql$, 't_' || q, 'r_' || q)
    USING p_task_id;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Retention: bounded batches, oldest first, through the indexes named in engine_query.
-- ---------------------------------------------------------------------------------------

-- One bounded batch of the engine query p_query_name ('cleanup_tasks' or 'cleanup_events'):
-- rows finished at least p_ttl_seconds ago, oldest first, at most p_limit.
CREATE OR REPLACE FUNCTION absurd.cleanup_batch(
    p_queue_name text,
    p_query_name text,
    p_ttl_seconds integer,
    p_limit integer
)
RETURNS integer
LANGUAGE plpgsql
-- A batch touches at most p_limit rows, so it must reach them through the indexes
-- whatever the row estimates say: never a scan of the whole history.
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_deleted integer;
BEGIN
    IF p_ttl_seconds IS NULL OR p_ttl_seconds < 0 THEN
        RAISE EXCEPTION 'TTL must be a non-negative number of seconds';
    END IF;
    EXECUTE absurd.engine_query(q, p_query_name)
    INTO v_deleted
    USING absurd.current_time() - make_interval(secs => p_ttl_seconds), greatest(coalesce(p_limit, 1000), 1);
    IF v_deleted > 0 THEN
        PERFORM pg_notify('absurd_changed', q);
    END IF;
    RETURN v_deleted;
END;
$$;

CREATE OR REPLACE FUNCTION absurd.cleanup_tasks(p_queue_name text, p_ttl_seconds integer, p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE sql
AS $$
    SELECT absurd.cleanup_batch(p_queue_name,
        CASE WHEN (SELECT storage_mode FROM absurd.queues WHERE queue_name = p_queue_name) = 'partitioned'
             THEN 'cleanup_partitioned_tasks' ELSE 'cleanup_tasks' END,
        p_ttl_seconds, p_limit)
$$;

CREATE OR REPLACE FUNCTION absurd.cleanup_events(p_queue_name text, p_ttl_seconds integer, p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE sql
AS $$ SELECT absurd.cleanup_batch(p_queue_name, 'cleanup_events', p_ttl_seconds, p_limit) $$;

-- One batch per queue, with each queue's own cleanup_ttl (whole seconds) and cleanup_limit.
CREATE OR REPLACE FUNCTION absurd.cleanup_all_queues(p_queue_name text DEFAULT NULL)
RETURNS TABLE (queue_name text, tasks_deleted integer, events_deleted integer)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_queue record;
    v_ttl integer;
BEGIN
    IF p_queue_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM absurd.queues WHERE queue_name = p_queue_name) THEN
        RAISE EXCEPTION 'Queue "%" does not exist', p_queue_name;
    END IF;
    FOR v_queue IN
        SELECT qs.queue_name, qs.cleanup_ttl, qs.cleanup_limit
        FROM absurd.queues qs
        WHERE (p_queue_name IS NULL OR qs.queue_name = p_queue_name)
        ORDER BY qs.queue_name
    LOOP
        v_ttl := least(floor(extract(epoch FROM v_queue.cleanup_ttl)), 2147483647)::integer;
        queue_name := v_queue.queue_name;
        tasks_deleted := absurd.cleanup_tasks(v_queue.queue_name, v_ttl, v_queue.cleanup_limit);
        events_deleted := absurd.cleanup_events(v_queue.queue_name, v_ttl, v_queue.cleanup_limit);
        RETURN NEXT;
    END LOOP;
END;
$$;

-- =======================================================================================
-- Fast paths (beyond the contract). absurd-tui's own workers call these instead of the
-- contract functions on their hot path; the contract functions are unchanged and the
-- official SDKs keep using them. Each fast path has the same semantics as the contract
-- function it stands for, and falls back to that function to report an error, so every
-- refusal is raised by one piece of code.
--
-- Why they are faster: the per-queue statements of the contract functions are dynamic
-- SQL, planned afresh on every call, and planning costs about three quarters of their
-- server time. Here each statement is PREPAREd once per session and queue (a prepared
-- statement is session state, so a pooler that moves sessions only costs a re-prepare),
-- and a worker does a task's completion and its next claim, with the claimed runs'
-- checkpoints, in one call.
-- =======================================================================================

-- The statements of the fast paths that are not claim_task's. Parameters are positional
-- and typed in the text, as engine_query's are.
CREATE OR REPLACE FUNCTION absurd.fast_query(p_queue_name text, p_query_name text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    t text := 't_' || p_queue_name;
    r text := 'r_' || p_queue_name;
    c text := 'c_' || p_queue_name;
    w text := 'w_' || p_queue_name;
BEGIN
    CASE p_query_name
    -- claim_task's statements, wrapped as claim_task wraps them.
    WHEN 'cancel_sweep' THEN
        RETURN format('SELECT coalesce(array_agg(task_id), ''{}'') FROM (%s) overdue',
                      absurd.engine_query(p_queue_name, 'cancel_sweep'));
    WHEN 'lease_sweep' THEN
        RETURN format('SELECT coalesce(jsonb_agg(to_jsonb(expired)), ''[]'') FROM (%s) expired',
                      absurd.engine_query(p_queue_name, 'lease_sweep'));
    WHEN 'claim' THEN
        RETURN format('SELECT array_agg(run_id ORDER BY available_at, run_id) FROM (%s) candidate',
                      absurd.engine_query(p_queue_name, 'claim'));
    WHEN 'claim_apply' THEN
        RETURN absurd.engine_query(p_queue_name, 'claim_apply');

    -- The replay caches of claimed runs, as get_task_checkpoint_states builds one: the
    -- committed checkpoints whose owner run is gone or not a later attempt, as
    -- {run_id: {checkpoint_name: state}}. $1 = run ids.
    WHEN 'checkpoints' THEN
        RETURN format($sql$
            SELECT coalesce(jsonb_object_agg(r.run_id::text, coalesce((
                       SELECT jsonb_object_agg(ck.checkpoint_name, ck.state)
                       FROM absurd.%1$I ck
                       LEFT JOIN absurd.%2$I o ON o.run_id = ck.owner_run_id
                       WHERE ck.task_id = r.task_id
                         AND ck.status = 'committed'
                         AND (o.run_id IS NULL OR o.attempt <= r.attempt)), '{}'::jsonb)),
                   '{}'::jsonb)
            FROM absurd.%2$I r
            WHERE r.run_id = ANY ($1::uuid[])$sql$, c, r);

    -- set_task_checkpoint_state's normal path. $1 = task, $2 = step, $3 = state,
    -- $4 = run, $5 = now, $6 = lease extension (0 = none). True when written.
    WHEN 'checkpoint' THEN
        RETURN format($sql$
            WITH owner AS (
                SELECT r.run_id, r.attempt
                FROM absurd.%1$I r
                WHERE r.run_id = $4::uuid AND r.task_id = $1::uuid
                  AND r.state NOT IN ('failed', 'cancelled')
                FOR UPDATE
            ), lease AS (
                UPDATE absurd.%1$I r
                SET claim_expires_at = $5::timestamptz + make_interval(secs => $6::double precision)
                FROM owner
                WHERE r.run_id = owner.run_id
                  AND $6::double precision > 0 AND r.state = 'running'
                  AND r.claim_expires_at IS NOT NULL
            ), written AS (
                INSERT INTO absurd.%2$I AS ck (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
                SELECT $1::uuid, $2::text, $3::jsonb, 'committed', owner.run_id, $5::timestamptz
                FROM owner
                ON CONFLICT (task_id, checkpoint_name) DO UPDATE
                SET state = EXCLUDED.state, status = EXCLUDED.status,
                    owner_run_id = EXCLUDED.owner_run_id, updated_at = EXCLUDED.updated_at
                WHERE NOT EXISTS (
                    SELECT 1 FROM absurd.%1$I o
                    WHERE o.run_id = ck.owner_run_id AND o.attempt > (SELECT attempt FROM owner)
                )
            )
            SELECT true FROM owner$sql$, r, c);

    -- complete_run's normal path. $1 = run, $2 = now, $3 = result. The task id when done.
    WHEN 'complete' THEN
        RETURN format($sql$
            WITH run AS (
                UPDATE absurd.%1$I SET state = 'completed', completed_at = $2::timestamptz,
                                       result = $3::jsonb
                WHERE run_id = $1::uuid AND state = 'running'
                RETURNING task_id
            ), task AS (
                UPDATE absurd.%2$I t SET state = 'completed', completed_payload = $3::jsonb,
                                         last_attempt_run = $1::uuid
                FROM run WHERE t.task_id = run.task_id
            ), waits AS (
                DELETE FROM absurd.%3$I WHERE run_id = $1::uuid AND EXISTS (SELECT 1 FROM run)
            )
            SELECT task_id FROM run$sql$, r, t, w);
    ELSE
        RAISE EXCEPTION 'Unknown fast query "%"', p_query_name;
    END CASE;
END;
$$;

-- The name of fast_query(q, name) PREPAREd in this session, preparing it on first use.
-- The name hashes the text, so a session outlives an upgrade of this file safely.
CREATE OR REPLACE FUNCTION absurd.fast_statement(p_queue_name text, p_query_name text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_text text := absurd.fast_query(p_queue_name, p_query_name);
    v_name text := 'absurd_fast_' || md5(p_queue_name || E'\n' || v_text);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = v_name) THEN
        EXECUTE format('PREPARE %I AS %s', v_name, v_text);
    END IF;
    RETURN v_name;
END;
$$;

-- claim_task, plus each claimed run's replay cache (checkpoint name -> state), so the
-- worker needs no get_task_checkpoint_states call. Same sweeps, same claim, same order.
-- DateStyle ISO: timestamps travel into the prepared statements as text literals. Generic
-- plans: with literal arguments the planner would otherwise re-plan custom every time.
CREATE OR REPLACE FUNCTION absurd.claim_runs(
    p_queue_name text,
    p_worker_id text,
    p_claim_timeout integer DEFAULT 30,
    p_qty integer DEFAULT 1
)
RETURNS TABLE (
    run_id uuid,
    task_id uuid,
    attempt integer,
    task_name text,
    params jsonb,
    retry_strategy jsonb,
    max_attempts integer,
    headers jsonb,
    wake_event text,
    event_payload jsonb,
    checkpoints jsonb
)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET jit = off
SET datestyle = 'ISO, YMD'
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_timeout integer := greatest(coalesce(p_claim_timeout, 30), 0);
    v_qty integer := greatest(coalesce(p_qty, 1), 1);
    v_worker text := coalesce(nullif(p_worker_id, ''), 'worker');
    v_overdue uuid[];
    v_task uuid;
    v_expired jsonb;
    v_run jsonb;
    v_runs uuid[];
    v_caches jsonb;
    v_claimed record;
BEGIN
    EXECUTE format('EXECUTE %I(%L)', absurd.fast_statement(q, 'cancel_sweep'), v_now)
    INTO v_overdue;
    FOREACH v_task IN ARRAY v_overdue LOOP
        PERFORM absurd.cancel_task_at(q, v_task, v_now, true);
    END LOOP;

    EXECUTE format('EXECUTE %I(%L, %L)', absurd.fast_statement(q, 'lease_sweep'), v_now, v_qty)
    INTO v_expired;
    FOR v_run IN SELECT value FROM jsonb_array_elements(v_expired) LOOP
        PERFORM absurd.fail_run_at(
            q, (v_run ->> 'run_id')::uuid,
            jsonb_strip_nulls(jsonb_build_object(
                'name', '$ClaimTimeout',
                'message', 'worker did not finish task within claim interval',
                'workerId', v_run -> 'claimed_by',
                'claimExpiredAt', v_run -> 'claim_expires_at',
                'attempt', v_run -> 'attempt')),
            NULL, v_now, (v_run ->> 'created_at')::timestamptz);
    END LOOP;

    EXECUTE format('EXECUTE %I(%L, %L)', absurd.fast_statement(q, 'claim'), v_now, v_qty)
    INTO v_runs;
    IF v_runs IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('EXECUTE %I(%L)', absurd.fast_statement(q, 'checkpoints'), v_runs)
    INTO v_caches;
    FOR v_claimed IN
        EXECUTE format('EXECUTE %I(%L, %L, %L, %L)', absurd.fast_statement(q, 'claim_apply'),
                       v_now, v_runs, v_worker, v_timeout)
    LOOP
        run_id := v_claimed.run_id;
        task_id := v_claimed.task_id;
        attempt := v_claimed.attempt;
        task_name := v_claimed.task_name;
        params := v_claimed.params;
        retry_strategy := v_claimed.retry_strategy;
        max_attempts := v_claimed.max_attempts;
        headers := v_claimed.headers;
        wake_event := v_claimed.wake_event;
        event_payload := v_claimed.event_payload;
        checkpoints := coalesce(v_caches -> v_claimed.run_id::text, '{}'::jsonb);
        RETURN NEXT;
    END LOOP;
    PERFORM pg_notify('absurd_changed', q);
END;
$$;

-- complete_run, then claim_runs in the same transaction: a worker's completion and its
-- next claim in one round trip. The claim is on p_claim_queue (default: the run's queue);
-- a claim queue that does not exist (yet) claims nothing rather than undo the completion.
-- p_qty = 0 claims nothing.
CREATE OR REPLACE FUNCTION absurd.complete_run_and_claim(
    p_queue_name text,
    p_run_id uuid,
    p_state jsonb,
    p_worker_id text,
    p_claim_timeout integer DEFAULT 30,
    p_qty integer DEFAULT 1,
    p_claim_queue text DEFAULT NULL
)
RETURNS TABLE (
    run_id uuid,
    task_id uuid,
    attempt integer,
    task_name text,
    params jsonb,
    retry_strategy jsonb,
    max_attempts integer,
    headers jsonb,
    wake_event text,
    event_payload jsonb,
    checkpoints jsonb
)
LANGUAGE plpgsql
SET datestyle = 'ISO, YMD'
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_task_id uuid;
    v_claim_queue text;
BEGIN
    PERFORM absurd.check_payload_size('result', p_state);
    EXECUTE format('EXECUTE %I(%L, %L, %L)', absurd.fast_statement(q, 'complete'),
                   p_run_id, absurd.current_time(), p_state)
    INTO v_task_id;
    IF v_task_id IS NULL THEN
        -- Not running: complete_run raises the error that says why.
        PERFORM absurd.complete_run(q, p_run_id, p_state);
    ELSE
        PERFORM pg_notify('absurd_changed', q);
    END IF;
    v_claim_queue := coalesce(p_claim_queue, q);
    IF coalesce(p_qty, 1) > 0
       AND EXISTS (SELECT 1 FROM absurd.queues WHERE queue_name = v_claim_queue) THEN
        RETURN QUERY SELECT * FROM absurd.claim_runs(v_claim_queue, p_worker_id,
                                                     p_claim_timeout, p_qty);
    END IF;
END;
$$;

-- set_task_checkpoint_state with a prepared statement; same parameters, same rules.
CREATE OR REPLACE FUNCTION absurd.write_checkpoint(
    p_queue_name text,
    p_task_id uuid,
    p_step_name text,
    p_state jsonb,
    p_owner_run uuid,
    p_extend_claim_by integer DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SET datestyle = 'ISO, YMD'
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_written boolean;
BEGIN
    PERFORM absurd.check_payload_size(format('the state of checkpoint "%s"', p_step_name), p_state);
    IF p_step_name IS NOT NULL AND p_step_name <> '' THEN
        EXECUTE format('EXECUTE %I(%L, %L, %L, %L, %L, %L)', absurd.fast_statement(q, 'checkpoint'),
                       p_task_id, p_step_name, p_state, p_owner_run, absurd.current_time(),
                       coalesce(p_extend_claim_by, 0))
        INTO v_written;
    END IF;
    IF v_written IS NULL THEN
        -- Refused (or a blank name): the contract function raises the error that says why.
        PERFORM absurd.set_task_checkpoint_state(q, p_task_id, p_step_name, p_state, p_owner_run,
                                                 p_extend_claim_by);
    END IF;
END;
$$;

-- Graceful hand-back: a worker that stops gives a run it claimed back to the queue
-- without using up an attempt. The run (same run id, same attempt) becomes pending and
-- claimable at once, its lease cleared; its checkpoints stay, so the next worker resumes
-- after the last committed step. A step that had not committed simply runs again, as
-- after a crash. Returns false, changing nothing, when the run is no longer running
-- (completed, failed, cancelled, or asleep): there is nothing to hand back.
CREATE OR REPLACE FUNCTION absurd.release_run(p_queue_name text, p_run_id uuid)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    q text := absurd.validate_queue_name(p_queue_name);
    v_now timestamptz := absurd.current_time();
    v_task_id uuid;
    v_state text;
BEGIN
    -- Run, then task: the usual lock order.
    EXECUTE format('SELECT task_id, state FROM absurd.%I WHERE run_id = $1 FOR UPDATE', 'r_' || q)
    INTO v_task_id, v_state
    USING p_run_id;
    IF v_task_id IS NULL THEN
        RAISE EXCEPTION 'Run "%" not found in queue "%"', p_run_id, q;
    ELSIF v_state <> 'running' THEN
        RETURN false;
    END IF;
    EXECUTE format($sql$
        WITH run AS (
            UPDATE absurd.%1$I
            SET state = 'pending', claimed_by = NULL, claim_expires_at = NULL, available_at = $2
            WHERE run_id = $1
        )
        UPDATE absurd.%2$I SET state = 'pending'
        WHERE task_id = $3 AND state = 'running'$sql$, 'r_' || q, 't_' || q)
    USING p_run_id, v_now, v_task_id;
    PERFORM pg_notify('absurd_ready', q);
    PERFORM pg_notify('absurd_changed', q);
    RETURN true;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Upgrade step: bring the tables and indexes of every existing queue up to this file.
-- Partitions are not created here (that locks the parent): ensure_partitions does it.
-- ---------------------------------------------------------------------------------------

DO $$
DECLARE
    v_queue text;
BEGIN
    FOR v_queue IN
        SELECT queue_name FROM absurd.queues
        WHERE octet_length(queue_name) <= 57
        ORDER BY queue_name
    LOOP
        PERFORM absurd.ensure_queue_tables(v_queue);
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Upgrade from upstream Absurd: what its 0.4.0 -> 0.5.0 migration does besides functions.
-- This engine needs no extension; upstream 0.4 installed uuid-ossp for its ids. Dropped
-- only when nothing else depends on it (never CASCADE).
-- ---------------------------------------------------------------------------------------

DO $$
BEGIN
    IF current_setting('absurd.upgrading_upstream', true) = 'true' THEN
        DROP EXTENSION IF EXISTS "uuid-ossp";
    END IF;
EXCEPTION
    WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'uuid-ossp was kept: other objects in this database depend on it';
END;
$$;

-- ---------------------------------------------------------------------------------------
-- The engine revision and the fingerprint of the functions as this file leaves them.
-- This block must stay the last statement of the file: a function created after it would
-- make get_engine_revision() report the engine as changed by another tool.
-- ---------------------------------------------------------------------------------------

DO $$
DECLARE
    c_revision constant integer := 2;
BEGIN
    EXECUTE format($ddl$
        CREATE OR REPLACE FUNCTION absurd.get_engine_revision()
        RETURNS integer
        LANGUAGE sql
        STABLE
        AS %L$ddl$,
        format('SELECT CASE WHEN absurd.engine_fingerprint() = %L THEN %s END',
               absurd.engine_fingerprint(), c_revision));
    COMMENT ON FUNCTION absurd.get_engine_revision() IS
        'absurd-tui engine revision; NULL when another tool has replaced engine functions';
END;
$$;
