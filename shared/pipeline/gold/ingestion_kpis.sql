-- ingestion_kpis: per event type and UTC hour of landing, the events landed (distinct, valid),
-- the dead-letters, and the ingestion lag (hub enqueue to lake) percentiles in seconds.
-- The lags are DOUBLE on every engine (a DECIMAL literal divisor would make Spark's DECIMAL).
-- keys: event_type, hour
-- empty_if_missing: bronze.deadletter(event_type VARCHAR, ingested_at TIMESTAMPTZ)
WITH landed AS (
    SELECT event_type, ingested_at, enqueued_time FROM silver.payment_transaction
    UNION ALL
    SELECT event_type, ingested_at, enqueued_time FROM silver.iot_telemetry
    UNION ALL
    SELECT event_type, ingested_at, enqueued_time FROM silver.app_interaction
    UNION ALL
    SELECT event_type, ingested_at, enqueued_time FROM silver.payment_chargeback
    UNION ALL
    SELECT event_type, ingested_at, enqueued_time FROM silver.device_failure
),
events AS (
    SELECT
        event_type,
        date_trunc('hour', ingested_at) AS hour,
        count(*) AS events,
        percentile_cont(0.5) WITHIN GROUP (
            ORDER BY CAST(date_diff('millisecond', enqueued_time, ingested_at) AS DOUBLE) / 1000
        ) AS lag_p50_s,
        percentile_cont(0.95) WITHIN GROUP (
            ORDER BY CAST(date_diff('millisecond', enqueued_time, ingested_at) AS DOUBLE) / 1000
        ) AS lag_p95_s,
        percentile_cont(0.99) WITHIN GROUP (
            ORDER BY CAST(date_diff('millisecond', enqueued_time, ingested_at) AS DOUBLE) / 1000
        ) AS lag_p99_s,
        max(CAST(date_diff('millisecond', enqueued_time, ingested_at) AS DOUBLE) / 1000) AS lag_max_s
    FROM landed
    GROUP BY event_type, date_trunc('hour', ingested_at)
),
dead AS (
    SELECT
        coalesce(event_type, 'unknown') AS event_type,
        date_trunc('hour', ingested_at) AS hour,
        count(*) AS deadletters
    FROM bronze.deadletter
    GROUP BY coalesce(event_type, 'unknown'), date_trunc('hour', ingested_at)
)
SELECT
    coalesce(e.event_type, d.event_type) AS event_type,
    coalesce(e.hour, d.hour) AS hour,
    coalesce(e.events, 0) AS events,
    coalesce(d.deadletters, 0) AS deadletters,
    e.lag_p50_s,
    e.lag_p95_s,
    e.lag_p99_s,
    e.lag_max_s
FROM events AS e
FULL OUTER JOIN dead AS d ON e.event_type = d.event_type AND e.hour = d.hour
